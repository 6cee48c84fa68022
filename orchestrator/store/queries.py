"""Queries over stored runs, each served by an index of `tables`, and pruning.

Functions take an open SQLAlchemy `Session` and return `orchestrator.models` dataclasses (or
plain values); the `Store` in `db.py` owns sessions and error translation.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, and_, delete, func, null, select, update
from sqlalchemy.orm import Session, selectinload

from orchestrator.history_models import PruneResult
from orchestrator.models import DeviceReport, Finding, NetworkFinding, RunSummary
from orchestrator.store import runs, tables
from orchestrator.store.convert import (
    finding_from_row,
    report_from_result,
    to_network_finding,
    to_report,
    to_summary,
)
from orchestrator.store.schema import (
    DeviceResult,
    FindingRow,
    NetworkFindingRow,
    Run,
)


def as_utc(moment: datetime) -> datetime:
    """`moment` as aware UTC; a naive value is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def get_run(session: Session, run_id: int) -> RunSummary | None:
    """The run, with live counts while it is still `running`; None when there is no such run."""
    run = session.get(Run, run_id)
    if run is None:
        return None
    if run.status == "running":
        reached, problems = runs.run_counts(session.connection(), run_id)
        return to_summary(run, reached=reached, with_problems=problems)
    return to_summary(run)


def latest_run_id(session: Session) -> int | None:
    """The id of the most recently started run."""
    return session.scalar(select(Run.id).order_by(Run.started_at.desc(), Run.id.desc()).limit(1))


def list_runs(
    session: Session,
    *,
    fleet: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[RunSummary]:
    """Runs, newest first, filtered by fleet, status and start time (inclusive)."""
    query = select(Run).order_by(Run.started_at.desc(), Run.id.desc()).limit(limit)
    if fleet is not None:
        query = query.where(Run.fleet == fleet)
    if status is not None:
        query = query.where(Run.status == status)
    if since is not None:
        query = query.where(Run.started_at >= as_utc(since))
    return [to_summary(run) for run in session.scalars(query)]


def reports_query(run_id: int) -> Select:
    """The run's device results (observations and steps included) with their findings, in the
    order they were saved."""
    return (
        select(DeviceResult)
        .where(DeviceResult.run_id == run_id)
        .order_by(DeviceResult.id)
        .options(selectinload(DeviceResult.findings))
    )


def load_reports(session: Session, run_id: int) -> list[DeviceReport]:
    """Every device report of a run, in the order they were saved (a replaced one moves last)."""
    return [to_report(row) for row in session.scalars(reports_query(run_id))]


def load_report_summaries(session: Session, run_id: int) -> list[DeviceReport]:
    """A run's reports without raw steps and observations (what a sweep keeps in memory), in the
    order they were saved: two plain queries, so a run of 100,000 devices loads in seconds and
    never holds its step outputs in memory."""
    results, found = tables.device_results, tables.findings
    by_result: dict[int, list[Finding]] = {}
    finding_rows = session.execute(
        select(found)
        .join(results, found.c.result_id == results.c.id)
        .where(results.c.run_id == run_id)
        .order_by(found.c.result_id, found.c.position)
    )
    for row in finding_rows:
        by_result.setdefault(row.result_id, []).append(finding_from_row(row))
    documents = ("observations", "steps", "step_output")
    columns = [column for column in results.c if column.name not in documents]
    rows = session.execute(
        select(*columns).where(results.c.run_id == run_id).order_by(results.c.id)
    )
    return [report_from_result(row, findings=tuple(by_result.get(row.id, ()))) for row in rows]


def load_network_findings(session: Session, run_id: int) -> list[NetworkFinding]:
    """The network-wide findings of a run, in the order they were saved."""
    query = (
        select(NetworkFindingRow)
        .where(NetworkFindingRow.run_id == run_id)
        .order_by(NetworkFindingRow.position)
    )
    return [to_network_finding(row) for row in session.scalars(query)]


def prune(session: Session, cutoff: datetime, *, whole_runs: bool) -> PruneResult:
    """Remove what runs started before `cutoff` stored (runs still `running` are kept).

    By default only raw step outputs and observations go (each device result's steps and
    observations documents are set to NULL); runs, device results, findings and network findings
    stay, so history, diffs and patterns still work. `whole_runs` deletes the runs and, by
    cascade, everything they hold. Counts are taken before deleting; `step_outputs` and
    `observations` count the device results whose step outputs or observations were removed.
    """
    old_runs = select(Run.id).where(Run.started_at < as_utc(cutoff), Run.status != "running")
    old_results = select(DeviceResult.id).where(DeviceResult.run_id.in_(old_runs))
    with_observations = and_(
        DeviceResult.run_id.in_(old_runs), DeviceResult.observations.is_not(None)
    )
    with_steps = and_(DeviceResult.run_id.in_(old_runs), DeviceResult.step_output.is_not(None))

    def count(table: type, *conditions: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(table).where(*conditions)))

    result = PruneResult(
        runs=int(session.scalar(select(func.count()).select_from(old_runs.subquery()))),
        whole_runs=whole_runs,
        device_results=count(DeviceResult, DeviceResult.run_id.in_(old_runs)) if whole_runs else 0,
        step_outputs=count(DeviceResult, with_steps),
        observations=count(DeviceResult, with_observations),
        findings=count(FindingRow, FindingRow.result_id.in_(old_results)) if whole_runs else 0,
        network_findings=count(NetworkFindingRow, NetworkFindingRow.run_id.in_(old_runs))
        if whole_runs
        else 0,
    )
    statements: list[Any] = []
    if whole_runs:
        statements += [
            delete(FindingRow).where(FindingRow.result_id.in_(old_results)),
            delete(DeviceResult).where(DeviceResult.run_id.in_(old_runs)),
            delete(NetworkFindingRow).where(NetworkFindingRow.run_id.in_(old_runs)),
            delete(Run).where(Run.id.in_(old_runs)),
        ]
    else:
        statements += [
            update(DeviceResult).where(with_steps).values(steps=null(), step_output=null()),
            update(DeviceResult).where(with_observations).values(observations=null()),
        ]
    for statement in statements:
        session.execute(statement.execution_options(synchronize_session=False))
    return result
