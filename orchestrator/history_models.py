"""Dataclasses of run history (a device over time, network findings across runs, run diffs,
pruning) and the pure comparisons that build them.

No I/O here: the store loads `DeviceState`s and `NetworkFinding`s, these functions compare them.
A device's root causes are the codes of its findings that nothing explains and that are above
`info` (what reports call its root cause); a change is any difference in that set or in whether
the device was reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.models import DeviceReport, NetworkFinding, RunSummary

PATTERN_STATUSES: tuple[str, ...] = ("new", "ongoing", "resolved")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class DeviceIdentity:
    """The latest known identity of a device."""

    uuid: str
    name: str
    fleet: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """One run's result for one device, compared with the device's previous (older) result."""

    run_id: int
    started_at: datetime
    reachable: bool
    route: str | None
    root_causes: tuple[str, ...]
    network_cause: str | None
    changed: bool
    """Root causes or reachability differ from the device's previous result (False for its first)."""
    previous_root_causes: tuple[str, ...] | None = None
    """The previous result's root causes; None when this is the device's first stored result."""
    error: str | None = None

    @property
    def route_kind(self) -> str | None:
        """`direct`, `jump`, `proxy` or `hostvia` (the first word of the stored route)."""
        return self.route.split(" ", 1)[0] if self.route else None

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of one `orch history` entry."""
        return {
            "run_id": self.run_id,
            "started_at": _iso(self.started_at),
            "reachable": self.reachable,
            "route": self.route_kind,
            "error": self.error,
            "root_causes": list(self.root_causes),
            "network_cause": self.network_cause,
            "changed": self.changed,
            "previous_root_causes": None
            if self.previous_root_causes is None
            else list(self.previous_root_causes),
        }


@dataclass(frozen=True)
class DeviceHistory:
    """A device and its results, newest first."""

    device: DeviceIdentity
    entries: tuple[HistoryEntry, ...]


@dataclass(frozen=True)
class PatternRecord:
    """A network finding of one run seen across the runs of the same source and fleet."""

    finding: NetworkFinding
    status: str
    """`new` (not in the previous run), `ongoing` (also there) or `resolved` (only there)."""
    first_seen: datetime | None
    last_seen: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of one `orch patterns` entry."""
        found = self.finding
        return {
            "network": {"kind": found.kind, "value": found.value},
            "category": found.category,
            "code": found.code,
            "devices": list(found.devices),
            "affected": found.affected,
            "total": found.total,
            "status": self.status,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "summary": found.summary,
            "remediation": found.remediation,
            "unreachable": found.unreachable,
        }


@dataclass(frozen=True)
class PatternReport:
    """The network findings of one run with their history; `previous` is the run compared with."""

    run: RunSummary
    previous: RunSummary | None
    records: tuple[PatternRecord, ...]


@dataclass(frozen=True)
class DeviceState:
    """What a run concluded about one device, without raw output."""

    uuid: str
    name: str
    reachable: bool
    problem: bool
    """Not reached, or a finding above `info` (the opposite of `DeviceReport.healthy`)."""
    root_causes: tuple[str, ...]
    network_cause: str | None = None


@dataclass(frozen=True)
class DeviceChange:
    """How one device differs between two runs."""

    uuid: str
    name: str
    direction: str
    """`worse`, `better`, `added` (only in the newer run) or `removed` (only in the older)."""
    reasons: tuple[str, ...]
    before: DeviceState | None
    after: DeviceState | None

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of one `orch diff` device entry."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "direction": self.direction,
            "reasons": list(self.reasons),
            "before": _state_dict(self.before),
            "after": _state_dict(self.after),
        }


def _state_dict(state: DeviceState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "reachable": state.reachable,
        "healthy": not state.problem,
        "root_causes": list(state.root_causes),
    }


@dataclass(frozen=True)
class NetworkChange:
    """How one network finding (kind, value, code) differs between two runs."""

    kind: str
    value: str
    code: str
    category: str
    status: str
    """`new`, `resolved`, `worse` (more devices affected) or `better` (fewer)."""
    affected_before: int
    affected_after: int
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON shape of one `orch diff` network entry."""
        return {
            "network": {"kind": self.kind, "value": self.value},
            "code": self.code,
            "category": self.category,
            "status": self.status,
            "affected_before": self.affected_before,
            "affected_after": self.affected_after,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class RunDiff:
    """Devices and networks that got worse or better from `before` to `after`."""

    before: RunSummary
    after: RunSummary
    devices: tuple[DeviceChange, ...]
    networks: tuple[NetworkChange, ...]
    unchanged: int
    """Devices in both runs with the same reachability and root causes."""


@dataclass(frozen=True)
class PruneResult:
    """What `Store.prune` removed."""

    runs: int
    """Runs touched (whole runs removed when `whole_runs`)."""
    whole_runs: bool
    device_results: int
    step_outputs: int
    """Device results whose step outputs were removed."""
    observations: int
    """Device results whose observations were removed."""
    findings: int
    network_findings: int


def diff_devices(
    before: Iterable[DeviceState], after: Iterable[DeviceState]
) -> tuple[tuple[DeviceChange, ...], int]:
    """Devices that changed between two runs (worse first, then better, added, removed, by name)
    and how many stayed the same."""
    old = {state.uuid: state for state in before}
    new = {state.uuid: state for state in after}
    changes: list[DeviceChange] = []
    unchanged = 0
    for uuid in old.keys() | new.keys():
        a, b = old.get(uuid), new.get(uuid)
        if a is None or b is None:
            present = b or a
            assert present is not None
            direction = "added" if a is None else "removed"
            changes.append(DeviceChange(uuid, present.name, direction, (), a, b))
            continue
        change = _compare(a, b)
        if change is None:
            unchanged += 1
        else:
            changes.append(change)
    order = {"worse": 0, "better": 1, "added": 2, "removed": 3}
    changes.sort(key=lambda c: (order[c.direction], c.name, c.uuid))
    return tuple(changes), unchanged


def _compare(a: DeviceState, b: DeviceState) -> DeviceChange | None:
    worse: list[str] = []
    better: list[str] = []
    if a.reachable and not b.reachable:
        worse.append("became unreachable")
    elif b.reachable and not a.reachable:
        better.append("became reachable")
    if not a.problem and b.problem and b.reachable:
        worse.append("healthy -> problem")
    elif a.problem and not b.problem:
        better.append("problem -> healthy")
    worse.extend(f"new root cause {code}" for code in b.root_causes if code not in a.root_causes)
    better.extend(f"resolved {code}" for code in a.root_causes if code not in b.root_causes)
    if not worse and not better:
        return None
    direction = "worse" if worse else "better"
    return DeviceChange(b.uuid, b.name, direction, tuple(worse + better), a, b)


def finding_key(finding: NetworkFinding) -> tuple[str, str, str]:
    """The identity of a network finding across runs: (kind, value, code)."""
    return (finding.kind, finding.value, finding.code)


def diff_networks(
    before: Sequence[NetworkFinding], after: Sequence[NetworkFinding]
) -> tuple[NetworkChange, ...]:
    """Network findings new, resolved, or affecting more/fewer devices between two runs."""
    old = {finding_key(f): f for f in before}
    new = {finding_key(f): f for f in after}
    changes: list[NetworkChange] = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a is None:
            status = "new"
        elif b is None:
            status = "resolved"
        elif b.affected > a.affected:
            status = "worse"
        elif b.affected < a.affected:
            status = "better"
        else:
            continue
        shown = b or a
        assert shown is not None
        changes.append(
            NetworkChange(
                kind=key[0],
                value=key[1],
                code=key[2],
                category=shown.category,
                status=status,
                affected_before=a.affected if a else 0,
                affected_after=b.affected if b else 0,
                summary=shown.summary,
            )
        )
    return tuple(changes)


def parse_network(text: str) -> tuple[str, str]:
    """`KIND:VALUE` (e.g. `public_address:203.0.113.7`, `site:depot-3`) into (kind, value)."""
    kind, sep, value = text.partition(":")
    if not sep or not kind or not value:
        raise ValueError(f"network {text!r} must be KIND:VALUE, e.g. site:depot-3")
    return kind.strip(), value.strip()


def on_network(
    report: DeviceReport, kind: str, value: str, findings: Sequence[NetworkFinding]
) -> bool:
    """Whether `report`'s device is on network (kind, value): one of its network keys matches,
    or a network finding of that network lists it."""
    from orchestrator.diagnosis.patterns import network_keys

    if (kind, value) in network_keys(report, None):
        return True
    return any(f.kind == kind and f.value == value and report.uuid in f.devices for f in findings)
