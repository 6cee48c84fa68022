"""The ORM classes of the history queries, mapped onto the tables of `orchestrator.store.tables`.

Only the store package sees these classes; every other layer gets `orchestrator.models`
dataclasses. A sweep never imports this module (it writes through the tables with SQLAlchemy
Core); reads that walk relationships (a result's findings) do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from orchestrator.store import tables
from orchestrator.store.common import RUN_STATUSES
from orchestrator.store.tables import UTCDateTime

__all__ = [
    "RUN_STATUSES",
    "UTCDateTime",
    "Base",
    "Run",
    "DeviceRow",
    "DeviceResult",
    "FindingRow",
    "NetworkFindingRow",
]


class Base(DeclarativeBase):
    """Declarative base over the tables' metadata."""

    metadata = tables.metadata


class Run(Base):
    """One diagnosis run."""

    __table__ = tables.runs

    id: Mapped[int]
    status: Mapped[str]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    source: Mapped[str]
    fleet: Mapped[str | None]
    devices_total: Mapped[int]
    devices_reached: Mapped[int]
    devices_with_problems: Mapped[int]
    options: Mapped[dict[str, Any]]
    host: Mapped[str]
    pid: Mapped[int]
    orch_version: Mapped[str]


class DeviceRow(Base):
    """The latest known identity of a device, updated by every run that saw it."""

    __table__ = tables.devices

    id: Mapped[int]
    uuid: Mapped[str]
    name: Mapped[str]
    fleet: Mapped[str | None]
    site: Mapped[str | None]
    labels: Mapped[list[Any]]
    public_address: Mapped[str | None]
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class DeviceResult(Base):
    """What one run found on one device."""

    __table__ = tables.device_results

    id: Mapped[int]
    run_id: Mapped[int]
    device_uuid: Mapped[str]
    device_name: Mapped[str]
    reachable: Mapped[bool]
    route: Mapped[str | None]
    error: Mapped[str | None]
    error_kind: Mapped[str | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    output_truncated: Mapped[bool]
    network_cause: Mapped[str | None]
    public_address: Mapped[str | None]
    gateway_ip: Mapped[str | None]
    gateway_mac: Mapped[str | None]
    subnet: Mapped[str | None]
    site: Mapped[str | None]
    labels: Mapped[list[Any]]
    observations: Mapped[dict[str, Any] | None]
    steps: Mapped[dict[str, Any] | None]
    step_output: Mapped[str | None]

    findings: Mapped[list[FindingRow]] = relationship(
        order_by="FindingRow.position", cascade="all, delete-orphan", passive_deletes=True
    )


class FindingRow(Base):
    """One diagnosed problem of a device, in the order the rules produced it."""

    __table__ = tables.findings

    id: Mapped[int]
    result_id: Mapped[int]
    position: Mapped[int]
    code: Mapped[str]
    category: Mapped[str]
    severity: Mapped[str]
    summary: Mapped[str]
    evidence: Mapped[list[Any]]
    remediation: Mapped[str]
    caused_by: Mapped[str | None]
    is_root_cause: Mapped[bool]


class NetworkFindingRow(Base):
    """A fleet-wide pattern flagged in one run."""

    __table__ = tables.network_findings

    id: Mapped[int]
    run_id: Mapped[int]
    position: Mapped[int]
    kind: Mapped[str]
    value: Mapped[str]
    category: Mapped[str]
    code: Mapped[str]
    devices: Mapped[list[Any]]
    affected: Mapped[int]
    total: Mapped[int]
    summary: Mapped[str]
    remediation: Mapped[str]
    unreachable: Mapped[bool]
