"""A run's rows written with SQLAlchemy Core: start, live counts, close, orphans, the devices
it saw, and its network-wide findings.

With `bulk` (device results) this is everything a sweep writes, so a sweep never imports the
ORM. Functions take a `Connection` in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from importlib import import_module
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)

from orchestrator.models import DeviceReport, NetworkFinding
from orchestrator.store.convert import device_identity_values, network_finding_values
from orchestrator.store.fast_insert import insert_rows
from orchestrator.store.tables import device_results, devices, findings, network_findings, runs


def insert_run(connection: Connection, values: Mapping[str, Any]) -> int:
    """Insert a run row; its id."""
    result = connection.execute(insert(runs).values(**values))
    (run_id,) = result.inserted_primary_key or (None,)
    if run_id is None:
        raise RuntimeError("the database returned no id for the new run")
    return int(run_id)


def get_run(connection: Connection, run_id: int) -> Row[Any] | None:
    """The run's row (columns as attributes), or None."""
    return connection.execute(select(runs).where(runs.c.id == run_id)).first()


def run_counts(connection: Connection, run_id: int) -> tuple[int, int]:
    """(devices reached, devices with problems) from the stored results of one run.

    A device has problems when it was not reached or has a finding above `info`, the same rule
    as `DeviceReport.healthy`.
    """
    results = device_results.c
    has_problem_finding = exists().where(
        and_(findings.c.result_id == results.id, findings.c.severity != "info")
    )
    reached = func.count().filter(results.reachable)
    problems = func.count().filter(~results.reachable | has_problem_finding)
    row = connection.execute(select(reached, problems).where(results.run_id == run_id)).one()
    return int(row[0]), int(row[1])


def close_run(connection: Connection, run_id: int, status: str) -> None:
    """Give a run its final status, end time and counts from its stored results."""
    reached, problems = run_counts(connection, run_id)
    connection.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status=status,
            finished_at=datetime.now(timezone.utc),
            devices_reached=reached,
            devices_with_problems=problems,
        )
    )


def set_devices_total(connection: Connection, run_id: int, total: int) -> None:
    """Correct the number of devices a run covers."""
    connection.execute(update(runs).where(runs.c.id == run_id).values(devices_total=total))


def running_on_host(connection: Connection, host: str) -> list[Row[Any]]:
    """Runs still marked `running` that were started on `host`, oldest first."""
    query = select(runs).where(runs.c.status == "running", runs.c.host == host)
    return list(connection.execute(query.order_by(runs.c.id)))


def upsert_devices(
    connection: Connection, fleet: str | None, reports: Iterable[DeviceReport]
) -> None:
    """Insert or refresh the latest identity of each reported device."""
    rows = device_identity_values(fleet, reports)
    # only the dialect in use is imported (PostgreSQL's costs 30 ms of every SQLite start-up)
    backend = "postgresql" if connection.dialect.name == "postgresql" else "sqlite"
    dialect = import_module(f"sqlalchemy.dialects.{backend}")
    statement = dialect.insert(devices)
    newer = statement.excluded.last_seen_at >= devices.c.last_seen_at
    statement = statement.on_conflict_do_update(
        index_elements=[devices.c.uuid],
        set_={
            name: statement.excluded[name]
            for name in ("name", "fleet", "site", "labels", "public_address", "last_seen_at")
        },
        where=newer,
    )
    connection.execute(statement, rows)


def set_network_causes(connection: Connection, run_id: int, causes: Mapping[str, str]) -> None:
    """Record, per device uuid, the network-wide finding that explains its problem."""
    if not causes:
        return
    statement = (
        update(device_results)
        .where(
            device_results.c.run_id == run_id,
            device_results.c.device_uuid == bindparam("uuid"),
        )
        .values(network_cause=bindparam("cause"))
    )
    connection.execute(
        statement, [{"uuid": uuid, "cause": cause} for uuid, cause in causes.items()]
    )


def replace_network_findings(
    connection: Connection, run_id: int, found: Sequence[NetworkFinding]
) -> None:
    """Replace the run's network-wide findings with ``found``."""
    connection.execute(delete(network_findings).where(network_findings.c.run_id == run_id))
    insert_rows(
        connection,
        network_findings,
        [network_finding_values(run_id, position, f) for position, f in enumerate(found)],
    )
