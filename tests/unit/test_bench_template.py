"""The benchmark's replay template gives each device its own journal numbers, nothing else."""

from __future__ import annotations

import base64
import re

from orchestrator.probes.base import Step
from orchestrator.probes.script import MARKER, split_output
from tests.bench.capture import Template

NONCE = "n0nce0000000000a"
UUID = "a" * 32
CHRONY = (
    "2026-11-25T16:50:40+0000 host-2 chronyd[894]: Selected source 162.159.200.123 "
    "(time.cloudflare.com), offset +0.0001051 seconds\n"
    "2026-11-25T16:51:43+0000 host-2 balena-supervisor[2203]: Reported current state to the "
    "cloud (state report 1261, 1 app)\n"
    "Aug 19 10:12:34 host openvpn[2632]: TCP: connect to [AF_INET]1.2.3.4:443 failed: "
    "connect:errno=111\n"
)
TRACKING = (
    "Reference ID    : A29FC87B (time.cloudflare.com)\nSystem time     : 0.000121874 seconds fast\n"
)


def _framed(sections: list[tuple[str, str]]) -> bytes:
    prefix = f"{MARKER}:{NONCE}:"
    parts = [f"{prefix}HELLO\n"]
    for name, body in sections:
        size = len(body.encode())
        parts.append(f"\n{prefix}BEGIN:{name}:0:{size}:-:0\n{body}\n{prefix}END:{name}\n")
    parts.append(f"{prefix}DONE\n")
    return "".join(parts).encode()


def _template(data: bytes) -> Template:
    entry = {
        "stdout": base64.b64encode(data).decode(),
        "uuid": UUID,
        "name": "bench-device",
        "nonce": NONCE,
        "captured_at": "1795737600",
        "exit_status": "0",
    }
    return Template.from_capture(entry)


def _render(template: Template, uuid: str) -> str:
    return template.render(NONCE.encode(), uuid.encode(), b"bench-device", 1795737600).decode()


def test_journal_numbers_differ_per_device_and_keep_the_frames() -> None:
    data = _framed([("time.tracking", TRACKING), ("time.journal", CHRONY)])
    template = _template(data)
    one, two = _render(template, "b" * 32), _render(template, "c" * 32)
    assert len(one) == len(two) == len(data)
    steps = (Step("time.tracking", "x"), Step("time.journal", "x"))
    for text in (one, two):
        split = split_output(text.encode(), NONCE, steps)
        assert split.done and not split.corrupt
        assert split.steps["time.tracking"].output == TRACKING  # not a journal: as captured
    journal_one = split_output(one.encode(), NONCE, steps).steps["time.journal"].output
    journal_two = split_output(two.encode(), NONCE, steps).steps["time.journal"].output
    assert journal_one != journal_two
    for journal in (journal_one, journal_two):
        lines = journal.splitlines()
        # prefixes, short numbers (pids, errno, app counts) and the text around numbers stay
        assert [line[:44] for line in lines] == [line[:44] for line in CHRONY.splitlines()]
        assert "connect:errno=111" in lines[2]
        assert re.search(r"\[AF_INET\]1\.\d\.\d\.\d:443 failed", lines[2])
        assert ", 1 app)" in lines[1]
        # long and dotted numbers keep their first digit and their shape
        assert re.search(r"Selected source 1\d\d\.\d\d\d\.\d\d\d\.\d\d\d \(time", lines[0])
        assert re.search(r"offset \+0\.\d{7} seconds", lines[0])
        assert re.search(r"state report 1\d\d\d,", lines[1])


def test_the_capturing_device_is_not_special() -> None:
    """Rendering for the captured uuid still varies from the capture: every device does."""
    data = _framed([("dns.journal", CHRONY)])
    template = _template(data)
    assert _render(template, UUID) != data.decode()
    assert _render(template, UUID) == _render(template, UUID)
