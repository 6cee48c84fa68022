"""The probe script's frames, produced by a real /bin/sh and split back: exit codes, the byte
cap, the step time limit, the device budget and arrival times reach the right fields."""

from __future__ import annotations

import subprocess
import time

from orchestrator.probes.base import Step
from orchestrator.probes.script import build_script, new_nonce, split_output

STEPS = (
    Step("plain", "echo hello; exit 3", timeout_s=5),
    Step("capped", "printf 'x%.0s' $(seq 1 300)", timeout_s=5, max_bytes=100),
    Step("slow", "sleep 5; echo never", timeout_s=2),
    Step("late", "echo too late", timeout_s=5),
)


def test_a_real_shell_run_splits_into_the_right_flags_and_times() -> None:
    nonce = new_nonce()
    # budget 2 s, counted in whole seconds of uptime: the slow step starts with 1 or 2 s left
    # (a second may tick over during the first two steps), its time limit spends them, and so
    # the last step never starts
    script = build_script(STEPS, nonce, budget_s=2)
    sent = time.time()
    stdout = subprocess.run(["sh", "-s"], input=script, capture_output=True, timeout=30).stdout
    arrived = time.time()
    middle = stdout.index(b"BEGIN:slow")
    split = split_output(stdout, nonce, STEPS, ((middle, sent), (len(stdout), arrived)))
    assert split.hello and split.done and not split.corrupt
    plain, capped, slow, late = (split.steps[step.name] for step in STEPS)

    assert (plain.output, plain.exit_code) == ("hello\n", 3)
    assert not (plain.truncated or plain.timed_out or plain.skipped or plain.missing)
    assert plain.received_at == sent

    assert capped.output == "x" * 100 and capped.truncated and capped.exit_code == 0
    assert not (capped.timed_out or capped.skipped)

    assert slow.timed_out and slow.exit_code in (124, 137, 143) and slow.output == ""
    assert not (slow.truncated or slow.skipped)
    assert slow.duration_s is not None and slow.duration_s >= 0
    assert slow.received_at == arrived

    assert late.skipped and late.exit_code is None and late.output == ""
    assert not (late.truncated or late.timed_out or late.missing or late.ok)

    # arrival times that stop short of the output: later steps take the last one known
    partial = split_output(stdout, nonce, STEPS, ((10, sent - 1), (middle, sent)))
    assert partial.steps["slow"].received_at == sent
    assert split_output(stdout, nonce, STEPS).steps["plain"].received_at is None
