"""The ORM schema: runs, device results and what each device produced.

Only the store package sees these classes; every other layer gets `orchestrator.models`
dataclasses. Indexes are chosen for the history queries (a device over time, a finding code or
category across runs, runs by fleet/status/time, network findings across runs).

A device's observations are one JSON document on its result (`DeviceResult.observations`), not
rows: nothing queries them across devices, and one document per device costs one serialisation
instead of two per observation. The document is stored column-wise, four arrays of equal length
in the order the probes produced the observations::

    {"key": ["time.offset_s", ...], "value": [0.25, ...],
     "evidence": [["System time : 0.25 seconds fast"], ...], "probe": ["time", ...]}

`key` and `probe` hold strings, `value` any JSON value (see `convert.filter_json`), `evidence`
arrays of strings. SQL NULL means "no observations": none were made, or `orch db prune` removed
them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

RUN_STATUSES: tuple[str, ...] = ("running", "completed", "interrupted", "failed")

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, identical on SQLite and PostgreSQL (and in migrations)."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Naive values are taken as UTC. SQLite has no time zones, so values are stored there as naive
    UTC; PostgreSQL stores `timestamp with time zone`. Values always load as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base carrying the shared naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Run(Base):
    """One diagnosis run."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'completed', 'interrupted', 'failed')", name="status"
        ),
        Index("ix_runs_started_at", "started_at"),
        Index("ix_runs_fleet_status", "fleet", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(Text)
    fleet: Mapped[str | None] = mapped_column(Text)
    devices_total: Mapped[int] = mapped_column(Integer)
    devices_reached: Mapped[int] = mapped_column(Integer)
    devices_with_problems: Mapped[int] = mapped_column(Integer)
    options: Mapped[dict[str, Any]]
    host: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    orch_version: Mapped[str] = mapped_column(Text)


class DeviceRow(Base):
    """The latest known identity of a device, updated by every run that saw it."""

    __tablename__ = "devices"
    __table_args__ = (Index("ix_devices_name", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    fleet: Mapped[str | None] = mapped_column(Text)
    site: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[list[Any]]
    public_address: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class DeviceResult(Base):
    """What one run found on one device."""

    __tablename__ = "device_results"
    __table_args__ = (
        UniqueConstraint("run_id", "device_uuid"),
        Index("ix_device_results_device_uuid_run_id", "device_uuid", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    device_uuid: Mapped[str] = mapped_column(Text)
    device_name: Mapped[str] = mapped_column(Text)
    reachable: Mapped[bool] = mapped_column(Boolean)
    route: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    output_truncated: Mapped[bool] = mapped_column(Boolean)
    network_cause: Mapped[str | None] = mapped_column(Text)
    public_address: Mapped[str | None] = mapped_column(Text)
    gateway_ip: Mapped[str | None] = mapped_column(Text)
    gateway_mac: Mapped[str | None] = mapped_column(Text)
    subnet: Mapped[str | None] = mapped_column(Text)
    site: Mapped[str | None] = mapped_column(Text)
    labels: Mapped[list[Any]]
    observations: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    """The observations document (see the module docstring); NULL when there are none."""

    steps: Mapped[list[StepOutputRow]] = relationship(
        order_by="StepOutputRow.position", cascade="all, delete-orphan", passive_deletes=True
    )
    findings: Mapped[list[FindingRow]] = relationship(
        order_by="FindingRow.position", cascade="all, delete-orphan", passive_deletes=True
    )


class StepOutputRow(Base):
    """Raw output of one probe step, capped at the store's byte limit."""

    __tablename__ = "step_outputs"
    __table_args__ = (Index("ix_step_outputs_result_id", "result_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("device_results.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    output: Mapped[str] = mapped_column(Text)
    truncated: Mapped[bool] = mapped_column(Boolean)
    timed_out: Mapped[bool] = mapped_column(Boolean)
    skipped: Mapped[bool] = mapped_column(Boolean)
    missing: Mapped[bool] = mapped_column(Boolean)
    duration_s: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[float | None] = mapped_column(Float)


class FindingRow(Base):
    """One diagnosed problem of a device, in the order the rules produced it."""

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_code", "code"),
        Index("ix_findings_category", "category"),
        Index("ix_findings_result_id", "result_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("device_results.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[Any]]
    remediation: Mapped[str] = mapped_column(Text)
    caused_by: Mapped[str | None] = mapped_column(Text)
    is_root_cause: Mapped[bool] = mapped_column(Boolean)


class NetworkFindingRow(Base):
    """A fleet-wide pattern flagged in one run."""

    __tablename__ = "network_findings"
    __table_args__ = (
        Index("ix_network_findings_run_id", "run_id"),
        Index("ix_network_findings_kind_value_code", "kind", "value", "code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    code: Mapped[str] = mapped_column(Text)
    devices: Mapped[list[Any]]
    affected: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    remediation: Mapped[str] = mapped_column(Text)
    unreachable: Mapped[bool] = mapped_column(Boolean)
