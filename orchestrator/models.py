"""Frozen dataclasses shared by every layer.

They carry data only: no I/O, no SQLAlchemy, no asyncssh. Every layer takes and returns these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.frozen import frozen_record

SEVERITIES: tuple[str, ...] = ("info", "warning", "error", "critical")


@dataclass(frozen=True)
class Device:
    """One device as a fleet source knows it."""

    uuid: str
    name: str
    address: str | None = None
    port: int = 22222
    user: str = "root"
    site: str | None = None
    labels: tuple[str, ...] = ()
    gateway: str | None = None
    """uuid or name of a device to jump through (inventory) when the target is not directly reachable."""
    public_address: str | None = None
    local_ips: tuple[str, ...] = ()
    macs: tuple[str, ...] = ()
    is_online: bool | None = None
    is_connected_to_vpn: bool | None = None
    heartbeat: str | None = None
    os_version: str | None = None
    supervisor_version: str | None = None
    last_connectivity_event: str | None = None
    fleet: str | None = None


@dataclass(frozen=True)
class Route:
    """How to reach a device: one SSH hop, optionally through another route (a jump)."""

    kind: str
    """`direct`, `jump`, `proxy` or `hostvia`."""
    host: str
    port: int
    user: str
    command: str = "sh -s"
    """What to exec on the far end; the probe script arrives on its stdin."""
    via: Route | None = None
    """The gateway hop for `jump` routes (its command is unused)."""
    reason: str = ""
    """Why the planner chose this route, shown to the user."""

    def describe(self) -> str:
        """A short human description such as `jump root@10.0.0.5:22222 via root@gw:22222`."""
        text = f"{self.kind} {self.user}@{self.host}:{self.port}"
        if self.kind in ("proxy", "hostvia"):
            text += f" ({self.command})"
        if self.via is not None:
            text += f" via {self.via.user}@{self.via.host}:{self.via.port}"
        return text


@frozen_record
class StepOutput:
    """What one framed step of the probe script produced on the device."""

    name: str
    output: str
    exit_code: int | None = None
    truncated: bool = False
    timed_out: bool = False
    skipped: bool = False
    """The device budget ran out before this step started."""
    missing: bool = False
    """No frame for this step arrived (connection lost, budget exceeded, garbage)."""
    duration_s: float | None = None
    received_at: float | None = None
    """Orchestrator wall clock when this step's output arrived (for round-trip correction)."""

    @property
    def ok(self) -> bool:
        """The step ran to completion and exited 0."""
        return self.exit_code == 0 and not (self.timed_out or self.skipped or self.missing)


@frozen_record
class Observation:
    """One measured fact about a device, with the raw lines it came from."""

    key: str
    value: Any
    evidence: tuple[str, ...] = ()
    probe: str = ""


@frozen_record
class Finding:
    """A diagnosed problem: stable code `category.name`, with evidence and a fix."""

    code: str
    category: str
    severity: str
    summary: str
    evidence: tuple[str, ...] = ()
    remediation: str = ""
    caused_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape of a finding."""
        return {
            "code": self.code,
            "category": self.category,
            "severity": self.severity,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "remediation": self.remediation,
            "caused_by": self.caused_by,
        }


@frozen_record
class NetworkKeys:
    """Keys that place a device on a network, for fleet-wide patterns."""

    public_address: str | None = None
    gateway_ip: str | None = None
    gateway_mac: str | None = None
    subnet: str | None = None
    site: str | None = None
    labels: tuple[str, ...] = ()


@frozen_record
class DeviceReport:
    """Everything one device's diagnosis produced; carries its own failure instead of raising."""

    uuid: str
    name: str
    reachable: bool
    route: str | None = None
    error: str | None = None
    error_kind: str | None = None
    """Machine-readable transport error class: timeout, refused, auth, hostkey, disconnected, ..."""
    findings: tuple[Finding, ...] = ()
    observations: tuple[Observation, ...] = ()
    steps: tuple[StepOutput, ...] = ()
    network: NetworkKeys = field(default_factory=NetworkKeys)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output_truncated: bool = False
    network_cause: str | None = None
    """Set when a network-wide pattern explains this device's problem (the network, not the device)."""

    @property
    def root_causes(self) -> tuple[str, ...]:
        """Codes of the findings that nothing else explains."""
        return tuple(f.code for f in self.findings if f.caused_by is None)

    @property
    def healthy(self) -> bool:
        """Reached, and nothing wrong above info level."""
        return self.reachable and not any(f.severity != "info" for f in self.findings)


@dataclass(frozen=True)
class NetworkFinding:
    """A pattern spanning a network: most devices sharing one key fail the same way."""

    kind: str
    """Network key kind: `lan`, `public_address`, `site`, `label`."""
    value: str
    category: str
    code: str
    devices: tuple[str, ...]
    affected: int
    total: int
    summary: str
    remediation: str
    unreachable: bool = False
    """True when the group is of devices that could not be reached at all."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used in run output."""
        return {
            "network": {"kind": self.kind, "value": self.value},
            "category": self.category,
            "code": self.code,
            "devices": list(self.devices),
            "affected": self.affected,
            "total": self.total,
            "summary": self.summary,
            "remediation": self.remediation,
            "unreachable": self.unreachable,
        }


@dataclass(frozen=True)
class RunSummary:
    """One diagnosis run as stored."""

    id: int
    status: str
    """`running`, `completed`, `interrupted` or `failed`."""
    started_at: datetime
    finished_at: datetime | None
    source: str
    devices_total: int
    devices_reached: int
    devices_with_problems: int = 0
    fleet: str | None = None
