"""time: the device clock measured against the orchestrator, and chronyd's own view.

Observations (all ``probe="time"``):

- ``time.offset_s`` (float): device clock minus orchestrator clock, from ``date -u +%s``
  against the midpoint of script send time and this step's arrival (round-trip corrected).
- ``time.offset_uncertainty_s`` (float): half the round trip plus the 1 s resolution of date.
- ``time.http_date_offset_s`` (float): device clock minus the ``Date`` header of
  ``<api>/connectivity-check`` (a second opinion that needs no orchestrator clock).
- ``time.connectivity_check_status`` (int): its HTTP status (204 expected; else a portal).
- ``time.chronyd_active`` (bool): ``systemctl is-active chronyd.service``.
- ``time.chronyd_reachable`` (bool): chronyc could talk to the daemon.
- ``time.leap_status`` (str), ``time.tracking_offset_s`` (float, Last offset),
  ``time.system_offset_s`` (float, System time, + = fast).
- ``time.sources_count`` / ``time.sources_reachable`` (int, Reach column != 0),
  ``time.source_selected`` (bool, a ``*`` source).
- ``log.chrony.*`` from the chronyd journal (see diagnosis.signatures).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from orchestrator.diagnosis.signatures import scan
from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output
from orchestrator.probes.curl_result import curl_command, parse_curl
from orchestrator.probes.journal import journal_step

NAME = "time"
_EPOCH = re.compile(r"^\s*(\d{9,11})\s*$", re.MULTILINE)
_DATE_HEADER = re.compile(r"^Date:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_TRACKING = re.compile(r"^([A-Za-z ()]+?)\s*:\s*(.*)$", re.MULTILINE)
_SOURCE = re.compile(r"^([\^=#])([*+\-?x~ ])\s+(\S+)\s+(\d+)\s+(\d+)\s+([0-7]+)\s+(\S+)\s+(.*)$")
_SECONDS = re.compile(r"([+-]?\d+(?:\.\d+)?) seconds(?: (fast|slow))?")
_NO_DAEMON = re.compile(r"Cannot talk to daemon|Could not open connection to daemon", re.I)


def _no_daemon(text: str) -> bool:
    """chronyc could not reach chronyd. Its usual output lacks the word "daemon" in any case,
    and that test is a tenth of what the case-insensitive search costs trying every position
    ("daemon" has no letter that case-folds to anything but its capital)."""
    return "daemon" in text.lower() and _NO_DAEMON.search(text) is not None


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """The date step comes first so its arrival time is close to the send time."""
    check = endpoints.api.rstrip("/") + "/connectivity-check"
    return (
        Step("time.date", "date -u +%s", timeout_s=5),
        Step(
            "time.http_date",
            "date -u +%s; " + curl_command(check, extra="-o /dev/null -D -"),
            timeout_s=15,
        ),
        Step("time.chronyd", "systemctl is-active chronyd.service", timeout_s=5),
        Step("time.tracking", "chronyc -n tracking", timeout_s=5),
        Step("time.sources", "chronyc -n sources", timeout_s=5),
        journal_step("time.journal", "chronyd.service"),
    )


def _obs(key: str, value: object, *evidence: str) -> Observation:
    return Observation(key, value, tuple(filter(None, evidence)), NAME)


def _measured_offset(out: StepOutput | None, ctx: ProbeContext) -> list[Observation]:
    if out is None:
        return []
    match = _EPOCH.search(out.output)
    if match is None or ctx.sent_at is None or out.received_at is None:
        return []
    device = int(match.group(1))
    midpoint = (ctx.sent_at + out.received_at) / 2
    offset = device - midpoint
    uncertainty = (out.received_at - ctx.sent_at) / 2 + 1.0
    line = f"device epoch {device}, orchestrator {midpoint:.1f} (+/- {uncertainty:.1f} s)"
    return [
        _obs("time.offset_s", round(offset, 1), line),
        _obs("time.offset_uncertainty_s", round(uncertainty, 1), line),
    ]


def _http_opinion(out: StepOutput | None) -> list[Observation]:
    if out is None:
        return []
    result = parse_curl(out)
    found = [_obs("time.connectivity_check_status", result.http_status, *result.evidence)]
    epoch = _EPOCH.search(out.output)
    header = _DATE_HEADER.search(out.output)
    if epoch and header:
        try:
            server = parsedate_to_datetime(header.group(1)).timestamp()
        except (TypeError, ValueError):
            return found
        offset = int(epoch.group(1)) - server
        evidence = (f"device epoch {epoch.group(1)}", header.group(0).strip())
        found.append(_obs("time.http_date_offset_s", round(offset, 1), *evidence))
    return found


def _seconds(text: str) -> float | None:
    match = _SECONDS.match(text.strip())
    if not match:
        return None
    value = float(match.group(1))
    return -value if match.group(2) == "slow" else value


def _tracking(out: StepOutput | None) -> list[Observation]:
    if out is None:
        return []
    if _no_daemon(out.output):
        return [_obs("time.chronyd_reachable", False, out.output.strip().splitlines()[0])]
    fields = {label.strip(): value.strip() for label, value in _TRACKING.findall(out.output)}
    found = []
    if "Leap status" in fields:
        found.append(_obs("time.chronyd_reachable", True))
        found.append(
            _obs(
                "time.leap_status", fields["Leap status"], f"Leap status : {fields['Leap status']}"
            )
        )
    for label, key in (
        ("Last offset", "time.tracking_offset_s"),
        ("System time", "time.system_offset_s"),
    ):
        value = _seconds(fields.get(label, ""))
        if value is not None:
            found.append(_obs(key, value, f"{label} : {fields[label]}"))
    return found


def _sources(out: StepOutput | None) -> list[Observation]:
    if out is None or _no_daemon(out.output):
        return []
    rows = [m for m in map(_SOURCE.match, out.output.splitlines()) if m]
    if not rows and "Name/IP address" not in out.output and "Number of sources" not in out.output:
        return []
    lines = [m.group(0) for m in rows] or [out.output.strip().splitlines()[0]]
    reachable = [m for m in rows if int(m.group(6), 8) != 0]
    return [
        _obs("time.sources_count", len(rows), *lines),
        _obs("time.sources_reachable", len(reachable), *lines),
        _obs("time.source_selected", any(m.group(2) == "*" for m in rows), *lines),
    ]


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """Turn the time steps into observations (see the module docstring)."""
    found = _measured_offset(step_output(steps, "time.date"), ctx)
    found += _http_opinion(step_output(steps, "time.http_date"))
    unit = step_output(steps, "time.chronyd")
    if unit is not None and unit.output.strip():
        state = unit.output.strip().splitlines()[0].strip()
        found.append(_obs("time.chronyd_active", state == "active", f"chronyd.service: {state}"))
    found += _tracking(step_output(steps, "time.tracking"))
    found += _sources(step_output(steps, "time.sources"))
    journal = step_output(steps, "time.journal")
    if journal is not None:
        found += scan(journal.output, NAME, default_source="chrony")
    return found


PROBE = make_probe(
    NAME,
    "device clock vs orchestrator (round-trip corrected), HTTPS Date, chronyd state and sources",
    build_steps,
    parse,
)
