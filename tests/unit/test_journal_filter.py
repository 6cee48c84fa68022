"""The device-side journal filter keeps every line the signature catalogue can use.

The filter is the real command a device runs (``grep -i -F -e "$ORCH_LOG_KEYS"``), run here with
GNU grep and BusyBox grep over every log-like fixture (seed logs, real captures, lab captures):
scanning the filtered text must give exactly the observations of the full text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.diagnosis.signatures import SIGNATURES, log_keys, scan
from orchestrator.probes.base import Endpoints
from orchestrator.probes.journal import KEYS_VARIABLE, journal_step
from orchestrator.probes.registry import get_probes, steps_for
from orchestrator.probes.script import build_script, step_exports

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOG_FIXTURES = sorted(
    path
    for folder in ("seed", "real", "lab")
    for path in (FIXTURES / folder).glob("*.txt")
    if path.name != "README.md"
)
GREPS = [
    pytest.param(["grep"], id="gnu-grep"),
    pytest.param(
        ["busybox", "grep"],
        id="busybox-grep",
        marks=pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed"),
    ),
]
HEALTHY_NOISE = """\
Nov 25 08:00:01 3f2a1b9 openvpn[812]: TUN/TAP device resin-vpn opened
Nov 25 08:00:01 3f2a1b9 openvpn[812]: /sbin/ip link set dev resin-vpn up mtu 1500
Nov 25 08:00:02 3f2a1b9 openvpn[812]: PUSH: Received control message: 'PUSH_REPLY,ping 10'
Nov 25 08:00:02 3f2a1b9 openvpn[812]: OPTIONS IMPORT: timers and/or timeouts modified
Nov 25 08:00:02 3f2a1b9 balena-supervisor[1200]: [info]    Applying target state
Nov 25 08:00:03 3f2a1b9 chronyd[601]: Source 162.159.200.1 replaced with 162.159.200.123
"""


def device_filter(grep: list[str], text: str) -> str:
    """``text`` through the filter command a journal step pipes into, as a device runs it."""
    keys = "\n".join(log_keys() or ())
    result = subprocess.run(
        [*grep, "-i", "-F", "-e", keys],
        input=text.encode(),
        capture_output=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.decode()


def test_every_signature_has_key_strings():
    keys = log_keys()
    assert keys is not None
    assert all(key == key.lower() and key for key in keys)
    assert len(SIGNATURES) <= 100 and len(keys) < 100


@pytest.mark.parametrize("grep", GREPS)
@pytest.mark.parametrize("fixture", LOG_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_filtered_text_gives_the_same_observations(grep, fixture):
    text = fixture.read_text(errors="replace")
    full = scan(text, "probe", default_source="text")
    filtered_text = device_filter(grep, text)
    assert scan(filtered_text, "probe", default_source="text") == full
    assert len(filtered_text) <= len(text)


@pytest.mark.parametrize("grep", GREPS)
def test_healthy_noise_is_dropped_and_health_lines_kept(grep):
    health = "Nov 25 08:00:04 3f2a1b9 openvpn[812]: Initialization Sequence Completed\n"
    out = device_filter(grep, HEALTHY_NOISE + health)
    assert out == health


def test_journal_steps_read_the_exported_keys():
    steps = steps_for(get_probes(None), Endpoints())
    journals = [step for step in steps if step.name.endswith("journal")]
    assert len(journals) == 5
    for step in journals:
        assert f'grep -i -F -e "${KEYS_VARIABLE}"' in step.command
        assert dict(step.env)[KEYS_VARIABLE] == "\n".join(log_keys() or ())
    exports = step_exports(steps)
    assert list(exports) == [KEYS_VARIABLE]


def test_script_exports_the_keys_once_and_rejects_conflicts():
    steps = [journal_step("a.journal", "a.service"), journal_step("b.journal", "b.service")]
    script = build_script(steps, "n0nce", 30).decode()
    assert script.count(f"export {KEYS_VARIABLE}") == 1
    clash = journal_step("c.journal", "c.service")
    clash = type(clash)(clash.name, clash.command, env=((KEYS_VARIABLE, "other"),))
    with pytest.raises(ValueError, match="another value"):
        build_script([*steps, clash], "n0nce", 30)


def test_the_filtered_journal_step_runs_in_a_real_shell(tmp_path):
    """The step's own command, with a stand-in journalctl printing a noisy journal."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    journal = tmp_path / "journal.txt"
    seed = (FIXTURES / "seed" / "6.1_openvpn_not_yet_valid.txt").read_text()
    journal.write_text(HEALTHY_NOISE * 100 + seed)
    stand_in = fake_bin / "journalctl"
    stand_in.write_text(f"#!/bin/sh\ncat '{journal}'\n")
    stand_in.chmod(0o755)
    step = journal_step("vpn.journal", "openvpn.service")
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", **dict(step.env)}
    out = subprocess.run(
        ["sh", "-c", step.command], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert scan(out, "vpn", default_source="vpn") == scan(seed, "vpn", default_source="vpn")
    assert len(out) < len(seed) + 1
