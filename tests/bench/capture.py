"""Capture the real output of orch's probe script once per scenario, and replay it per device.

``capture`` starts the demo simulator (``orchestrator.sim.SimFleet``: real asyncssh, real
``/bin/sh``, the fake balenaOS commands of ``fakebin/``) with one device per scenario, sends each
the probe script orch itself builds, and keeps what it printed. ``Template`` turns one capture
into the bytes a bench device answers with: the run's nonce, the device's uuid (and its
7-character hostname form) and name put in, and device clock readings (``date -u +%s`` lines,
HTTP ``Date:`` headers) moved forward by the time since the capture, so a replayed healthy
device still reads as in sync. Journal messages get the device's own numbers: in every
journal section, each number that is a decimal or dotted (offsets, addresses) or has four
digits or more (counters) keeps its first digit and takes the rest from a hash of the device's
uuid, as the journals of a real fleet differ from device to device (orch remembers what each
message it has read says, so replaying one journal to every device would hide what reading
them costs); short numbers (exit codes, errno values, HTTP statuses, pids) stay as captured,
so each scenario's diagnosis does not change. Every substitution keeps the byte length, so the script's
length-prefixed frames stay valid.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

import asyncssh

from orchestrator.config import Config
from orchestrator.diagnosis.signatures import _PREFIX_BODY
from orchestrator.probes.registry import get_probes, steps_for
from orchestrator.probes.script import MARKER, build_script, new_nonce
from orchestrator.sim import SimFleet
from orchestrator.sim.model import SimDeviceSpec
from orchestrator.sweep import endpoints_from

NONCE_LINE = re.compile(rb"(?m)^N=([0-9A-Za-z]+)$")
_EPOCH_LINE = re.compile(rb"(?m)^\d{10}$")
_DATE_HEADER = re.compile(rb"(?mi)^Date: ([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} [\d:]{8} GMT)")
_JOURNAL_PREFIX = re.compile(_PREFIX_BODY.encode())
_MESSAGE_NUMBER = re.compile(rb"\d+(?:\.\d+)+|\d{4,}")
"""A number in a journal message that differs between devices: dotted or decimal, or long."""


def journal_numbers(data: bytes, nonce: bytes) -> list[tuple[int, int]]:
    """Spans of the numbers in the messages of ``data``'s journal sections (see the module)."""
    marker = MARKER.encode() + b":" + nonce + b":"
    header = re.compile(re.escape(marker) + rb"BEGIN:([a-z0-9_.-]*journal):[^\n]*\n")
    spans: list[tuple[int, int]] = []
    for section in header.finditer(data):
        end = data.find(b"\n" + marker + b"END:" + section.group(1), section.end())
        body_end = end if end >= 0 else len(data)
        at = section.end()
        while at < body_end:
            line_end = data.find(b"\n", at, body_end)
            line_end = body_end if line_end < 0 else line_end
            prefix = _JOURNAL_PREFIX.match(data, at, line_end)
            start = prefix.end() if prefix else at
            for number in _MESSAGE_NUMBER.finditer(data, start, line_end):
                spans.append((number.start(), number.end()))
            at = line_end + 1
    return spans


def probe_script(nonce: str) -> bytes:
    """The script ``orch diagnose`` sends with the default configuration and every probe."""
    probes = get_probes(None)
    return build_script(steps_for(probes, endpoints_from(Config())), nonce, 90.0)


async def capture(specs: list[SimDeviceSpec]) -> dict[str, dict[str, str]]:
    """Run the probe script on one simulated device per spec; returns JSON-ready captures."""
    nonce = new_nonce()
    script = probe_script(nonce)
    captured: dict[str, dict[str, str]] = {}
    async with SimFleet(specs) as fleet:
        for spec in specs:
            port = fleet.device(spec.name).port
            async with asyncssh.connect(
                "127.0.0.1",
                port,
                username="root",
                client_keys=[fleet.client_key],
                known_hosts=None,
                config=None,
            ) as conn:
                result = await conn.run("sh -s", input=script, encoding=None, check=False)
            stdout = result.stdout if isinstance(result.stdout, bytes) else b""
            captured[spec.scenario] = {
                "uuid": spec.uuid,
                "name": spec.name,
                "nonce": nonce,
                "captured_at": str(int(time.time())),
                "exit_status": str(result.exit_status),
                "stdout": base64.b64encode(stdout).decode(),
            }
    return captured


def capture_sync(specs: list[SimDeviceSpec]) -> dict[str, dict[str, str]]:
    """``capture`` from synchronous code."""
    return asyncio.run(capture(specs))


@dataclass
class Template:
    """One scenario's captured output, split where per-device and per-run values go."""

    parts: list[bytes | tuple[str, bytes]]
    """Literal bytes, or (kind, captured value) for ``nonce``, ``uuid``, ``short``, ``name``,
    ``epoch`` and ``date`` slots."""
    captured_at: int
    name_len: int
    exit_status: int

    @classmethod
    def from_capture(cls, entry: dict[str, str]) -> Template:
        data = base64.b64decode(entry["stdout"])
        uuid, name = entry["uuid"].encode(), entry["name"].encode()
        slots: list[tuple[int, int, str]] = []
        for kind, value in (("nonce", entry["nonce"].encode()), ("uuid", uuid), ("name", name)):
            slots += [(m.start(), m.end(), kind) for m in re.finditer(re.escape(value), data)]
        for m in re.finditer(re.escape(uuid[:7]), data):
            slots.append((m.start(), m.end(), "short"))
        slots += [(m.start(), m.end(), "epoch") for m in _EPOCH_LINE.finditer(data)]
        slots += [(m.start(1), m.end(1), "date") for m in _DATE_HEADER.finditer(data)]
        slots += [(a, b, "number") for a, b in journal_numbers(data, entry["nonce"].encode())]
        slots.sort(key=lambda slot: (slot[0], -(slot[1] - slot[0])))
        parts: list[bytes | tuple[str, bytes]] = []
        at = 0
        for start, end, kind in slots:
            if start < at:
                continue  # inside a longer slot (a short uuid inside the full one)
            parts += [data[at:start], (kind, data[start:end])]
            at = end
        parts.append(data[at:])
        return cls(parts, int(entry["captured_at"]), len(name), int(entry["exit_status"]))

    def render(self, nonce: bytes, uuid: bytes, name: bytes, now: float) -> bytes:
        """The output device ``uuid``/``name`` prints for a script carrying ``nonce``."""
        shift = int(now) - self.captured_at
        values = {"nonce": nonce, "uuid": uuid, "short": uuid[:7], "name": name}
        digits = _device_digits(uuid)
        used = 0
        out = []
        for part in self.parts:
            if isinstance(part, bytes):
                out.append(part)
                continue
            kind, captured = part
            if kind == "epoch":
                out.append(str(int(captured) + shift).encode())
            elif kind == "date":
                when = parsedate_to_datetime(captured.decode()).timestamp() + shift
                out.append(formatdate(when, usegmt=True).encode())
            elif kind == "name" and len(name) != self.name_len:
                out.append(captured)  # a name of another length would break the frames
            elif kind == "number":
                varied = bytearray(captured)
                for at in range(1, len(varied)):
                    if varied[at] != ord("."):
                        varied[at] = digits[used % len(digits)]
                        used += 1
                out.append(bytes(varied))
            else:
                out.append(values[kind])
        return b"".join(out)


def _device_digits(uuid: bytes) -> bytes:
    """ASCII digits that differ from device to device (where ``uuid`` does)."""
    return str(int.from_bytes(hashlib.sha256(uuid).digest(), "big")).encode()
