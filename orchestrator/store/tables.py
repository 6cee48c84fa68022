"""The tables: runs, device results and what each device produced, in SQLAlchemy Core.

A sweep writes through these tables alone, so it never imports the ORM; the ORM classes that
the history queries use (`orchestrator.store.schema`) are mapped onto the same tables. Indexes
are chosen for the history queries (a device over time, a finding code or category across runs,
runs by fleet/status/time, network findings across runs).

A device's observations are one JSON document on its result (`device_results.observations`),
not rows: nothing queries them across devices, and one document per device costs one
serialisation instead of two per observation. The document is stored column-wise, four arrays
of equal length in the order the probes produced the observations::

    {"key": ["time.offset_s", ...], "value": [0.25, ...],
     "evidence": [["System time : 0.25 seconds fast"], ...], "probe": ["time", ...]}

`key` and `probe` hold strings, `value` any JSON value (see `convert.filter_json`), `evidence`
arrays of strings. SQL NULL means "no observations": none were made, or `orch db prune` removed
them.

The raw step outputs are stored the same way, one document per device rather than ~40 rows
(a sweep of 100,000 devices wrote four million step rows; at 1,000 devices the rows were a
twentieth of a sweep's CPU). `device_results.steps` holds the steps' fields column-wise, in
run order, each flag as the positions of the steps that have it, and
`device_results.step_output` their outputs end to end, each ``size`` characters long::

    {"name": ["time.date", ...], "exit_code": [0, ...], "duration_s": [0.0, ...],
     "received_at": [1764089440.12, ...], "size": [31, ...],
     "truncated": [], "timed_out": [7], "skipped": [], "missing": [38, 39]}

Outputs are capped at the store's byte limit (``truncated`` says so). Both are SQL NULL when a
result has no steps (unreachable) or `orch db prune` removed them.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

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


metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _id() -> Column[int]:
    return Column("id", Integer, primary_key=True)


def _parent(name: str, table: str) -> Column[int]:
    return Column(name, Integer, ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False)


def _required(name: str, type_: object) -> Column[object]:
    return Column(name, type_, nullable=False)


def _optional(name: str, type_: object) -> Column[object]:
    return Column(name, type_, nullable=True)


runs = Table(
    "runs",
    metadata,
    _id(),
    _required("status", String(16)),
    _required("started_at", UTCDateTime()),
    _optional("finished_at", UTCDateTime()),
    _required("source", Text),
    _optional("fleet", Text),
    _required("devices_total", Integer),
    _required("devices_reached", Integer),
    _required("devices_with_problems", Integer),
    _required("options", JSON()),
    _required("host", Text),
    _required("pid", Integer),
    _required("orch_version", Text),
    CheckConstraint("status IN ('running', 'completed', 'interrupted', 'failed')", name="status"),
    Index("ix_runs_started_at", "started_at"),
    Index("ix_runs_fleet_status", "fleet", "status"),
)
"""One diagnosis run."""

devices = Table(
    "devices",
    metadata,
    _id(),
    Column("uuid", Text, nullable=False, unique=True),
    _required("name", Text),
    _optional("fleet", Text),
    _optional("site", Text),
    _required("labels", JSON()),
    _optional("public_address", Text),
    _required("first_seen_at", UTCDateTime()),
    _required("last_seen_at", UTCDateTime()),
    Index("ix_devices_name", "name"),
)
"""The latest known identity of a device, updated by every run that saw it."""

device_results = Table(
    "device_results",
    metadata,
    _id(),
    _parent("run_id", "runs"),
    _required("device_uuid", Text),
    _required("device_name", Text),
    _required("reachable", Boolean),
    _optional("route", Text),
    _optional("error", Text),
    _optional("error_kind", String(32)),
    _optional("started_at", UTCDateTime()),
    _optional("finished_at", UTCDateTime()),
    _required("output_truncated", Boolean),
    _optional("network_cause", Text),
    _optional("public_address", Text),
    _optional("gateway_ip", Text),
    _optional("gateway_mac", Text),
    _optional("subnet", Text),
    _optional("site", Text),
    _required("labels", JSON()),
    _optional("observations", JSON(none_as_null=True)),
    _optional("steps", JSON(none_as_null=True)),
    _optional("step_output", Text),
    UniqueConstraint("run_id", "device_uuid"),
    Index("ix_device_results_device_uuid_run_id", "device_uuid", "run_id"),
)
"""What one run found on one device (``observations``, ``steps`` and ``step_output``: the
documents described above)."""

findings = Table(
    "findings",
    metadata,
    _id(),
    _parent("result_id", "device_results"),
    _required("position", Integer),
    _required("code", Text),
    _required("category", Text),
    _required("severity", String(16)),
    _required("summary", Text),
    _required("evidence", JSON()),
    _required("remediation", Text),
    _optional("caused_by", Text),
    _required("is_root_cause", Boolean),
    Index("ix_findings_code", "code"),
    Index("ix_findings_category", "category"),
    Index("ix_findings_result_id", "result_id"),
)
"""One diagnosed problem of a device, in the order the rules produced it."""

network_findings = Table(
    "network_findings",
    metadata,
    _id(),
    _parent("run_id", "runs"),
    _required("position", Integer),
    _required("kind", Text),
    _required("value", Text),
    _required("category", Text),
    _required("code", Text),
    _required("devices", JSON()),
    _required("affected", Integer),
    _required("total", Integer),
    _required("summary", Text),
    _required("remediation", Text),
    _required("unreachable", Boolean),
    Index("ix_network_findings_run_id", "run_id"),
    Index("ix_network_findings_kind_value_code", "kind", "value", "code"),
)
"""A fleet-wide pattern flagged in one run."""
