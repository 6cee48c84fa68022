"""History queries: a device over time, network findings across runs, two runs compared, and
one run's devices selected by category, code or reachability.

Functions take an open `Session` and return `orchestrator.history_models` / `models` dataclasses.
Each is served by an index: a device's results by `device_results(device_uuid, run_id)`, a run's
results by `uq_device_results_run_id_device_uuid`, findings by `findings(result_id)`, network
findings across runs by `network_findings(kind, value, code)`, runs by `runs(fleet, status)` and
`runs(started_at)`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, tuple_
from sqlalchemy.orm import Session

from orchestrator.errors import StoreError
from orchestrator.history_models import (
    DeviceHistory,
    DeviceIdentity,
    DeviceState,
    HistoryEntry,
    PatternRecord,
    PatternReport,
    finding_key,
)
from orchestrator.models import DeviceReport, NetworkFinding
from orchestrator.store.convert import to_report, to_summary
from orchestrator.store.queries import as_utc, load_network_findings, reports_query
from orchestrator.store.schema import DeviceResult, DeviceRow, FindingRow, NetworkFindingRow, Run

MIN_PREFIX = 7


class DeviceNotFoundError(StoreError):
    """No stored device matches the given uuid, uuid prefix or name (or several do)."""

    exit_code = 2


def _is_root_cause() -> ColumnElement[bool]:
    return and_(FindingRow.is_root_cause, FindingRow.severity != "info")


def resolve_device(session: Session, wanted: str) -> DeviceIdentity:
    """The device whose uuid, uuid prefix (7+ characters) or name is `wanted`.

    An exact uuid wins over a prefix, a prefix over a name; ambiguity is an error naming the
    candidates.
    """
    wanted = wanted.strip()
    if not wanted:
        raise DeviceNotFoundError("no device given: pass a uuid, a 7+ character prefix or a name")
    exact = session.scalars(select(DeviceRow).where(DeviceRow.uuid == wanted)).all()
    candidates = list(exact)
    if not candidates and len(wanted) >= MIN_PREFIX:
        pattern = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = select(DeviceRow).where(DeviceRow.uuid.like(pattern, escape="\\")).limit(6)
        candidates = list(session.scalars(query))
    if not candidates:
        candidates = list(session.scalars(select(DeviceRow).where(DeviceRow.name == wanted)))
    if not candidates:
        raise DeviceNotFoundError(
            f"no stored device matches {wanted!r} (uuid, 7+ character uuid prefix, or name)"
        )
    if len(candidates) > 1:
        names = ", ".join(f"{d.name} ({d.uuid})" for d in candidates[:5])
        raise DeviceNotFoundError(f"{wanted!r} matches several devices: {names}; give the uuid")
    row = candidates[0]
    return DeviceIdentity(uuid=row.uuid, name=row.name, fleet=row.fleet)


def history_statement(
    uuid: str, *, since: datetime | None = None, category: str | None = None, limit: int = 100
) -> Select:
    """The device's results, newest first, each with the id and reachability of its previous one.

    The window runs over all of the device's results (index `device_uuid, run_id`), so the
    previous result is found even when `since`, `category` or `limit` leave it out.
    """
    window = {"partition_by": DeviceResult.device_uuid, "order_by": DeviceResult.run_id}
    results = (
        select(
            DeviceResult.id,
            DeviceResult.run_id,
            DeviceResult.reachable,
            DeviceResult.route,
            DeviceResult.error,
            DeviceResult.network_cause,
            func.lag(DeviceResult.id).over(**window).label("previous_id"),
            func.lag(DeviceResult.reachable).over(**window).label("previous_reachable"),
        )
        .where(DeviceResult.device_uuid == uuid)
        .subquery("results")
    )
    query = (
        select(results, Run.started_at)
        .join(Run, Run.id == results.c.run_id)
        .order_by(results.c.run_id.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(Run.started_at >= as_utc(since))
    if category is not None:
        query = query.where(
            exists().where(
                FindingRow.result_id == results.c.id,
                FindingRow.category == category,
                FindingRow.severity != "info",
            )
        )
    return query


def device_history(
    session: Session,
    device: DeviceIdentity,
    *,
    since: datetime | None = None,
    category: str | None = None,
    limit: int = 100,
) -> DeviceHistory:
    """The device's results over time, newest first, with root-cause changes marked."""
    rows = session.execute(
        history_statement(device.uuid, since=since, category=category, limit=limit)
    ).all()
    ids = {row.id for row in rows} | {row.previous_id for row in rows if row.previous_id}
    causes = _root_causes_by_result(session, ids)
    entries = []
    for row in rows:
        roots = causes.get(row.id, ())
        previous = None if row.previous_id is None else causes.get(row.previous_id, ())
        changed = previous is not None and (
            set(previous) != set(roots) or bool(row.previous_reachable) != row.reachable
        )
        entries.append(
            HistoryEntry(
                run_id=row.run_id,
                started_at=row.started_at,
                reachable=row.reachable,
                route=row.route,
                root_causes=roots,
                network_cause=row.network_cause,
                changed=changed,
                previous_root_causes=previous,
                error=row.error,
            )
        )
    return DeviceHistory(device=device, entries=tuple(entries))


def _root_causes_by_result(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """Root-cause codes (above info) of each device result, in the order the rules gave them."""
    found: dict[int, list[str]] = defaultdict(list)
    wanted = sorted(ids)
    for start in range(0, len(wanted), 1000):
        query = (
            select(FindingRow.result_id, FindingRow.code)
            .where(FindingRow.result_id.in_(wanted[start : start + 1000]), _is_root_cause())
            .order_by(FindingRow.result_id, FindingRow.position)
        )
        for result_id, code in session.execute(query):
            if code not in found[result_id]:
                found[result_id].append(code)
    return {result_id: tuple(codes) for result_id, codes in found.items()}


def device_states(session: Session, run_id: int) -> list[DeviceState]:
    """What the run concluded about each of its devices, without raw output."""
    problem = ~DeviceResult.reachable | exists().where(
        FindingRow.result_id == DeviceResult.id, FindingRow.severity != "info"
    )
    rows = session.execute(
        select(
            DeviceResult.device_uuid,
            DeviceResult.device_name,
            DeviceResult.reachable,
            DeviceResult.network_cause,
            problem.label("problem"),
        ).where(DeviceResult.run_id == run_id)
    ).all()
    roots: dict[str, list[str]] = defaultdict(list)
    query = (
        select(DeviceResult.device_uuid, FindingRow.code)
        .join(FindingRow, FindingRow.result_id == DeviceResult.id)
        .where(DeviceResult.run_id == run_id, _is_root_cause())
        .order_by(DeviceResult.device_uuid, FindingRow.position)
    )
    for uuid, code in session.execute(query):
        if code not in roots[uuid]:
            roots[uuid].append(code)
    return [
        DeviceState(
            uuid=row.device_uuid,
            name=row.device_name,
            reachable=row.reachable,
            problem=bool(row.problem),
            root_causes=tuple(roots.get(row.device_uuid, ())),
            network_cause=row.network_cause,
        )
        for row in rows
    ]


def _same_fleet(run: Run) -> ColumnElement[bool]:
    fleet = Run.fleet.is_(None) if run.fleet is None else Run.fleet == run.fleet
    return and_(Run.source == run.source, fleet)


def previous_run(session: Session, run: Run) -> Run | None:
    """The latest `completed` run of the same source and fleet started before `run`."""
    earlier = or_(
        Run.started_at < run.started_at, and_(Run.started_at == run.started_at, Run.id < run.id)
    )
    query = (
        select(Run)
        .where(_same_fleet(run), Run.status == "completed", earlier)
        .order_by(Run.started_at.desc(), Run.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def latest_run(session: Session, fleet: str | None = None) -> Run | None:
    """The most recently started run, optionally of one fleet."""
    query = select(Run).order_by(Run.started_at.desc(), Run.id.desc()).limit(1)
    if fleet is not None:
        query = query.where(Run.fleet == fleet)
    return session.scalar(query)


def pattern_report(session: Session, run: Run, since: datetime | None = None) -> PatternReport:
    """The run's network findings (and those of the previous run it resolved) with status and
    first/last seen among the runs of the same source and fleet from `since` up to `run`."""
    previous = previous_run(session, run)
    current = load_network_findings(session, run.id)
    earlier = load_network_findings(session, previous.id) if previous is not None else []
    earlier_keys = {finding_key(f) for f in earlier}
    current_keys = {finding_key(f) for f in current}
    resolved = [f for f in earlier if finding_key(f) not in current_keys]
    seen = _seen_range(session, run, current_keys | earlier_keys, since)
    records = [
        PatternRecord(
            finding=f,
            status="ongoing" if finding_key(f) in earlier_keys else "new",
            first_seen=seen.get(finding_key(f), (None, None))[0],
            last_seen=seen.get(finding_key(f), (None, None))[1],
        )
        for f in current
    ]
    records.extend(
        PatternRecord(
            finding=f,
            status="resolved",
            first_seen=seen.get(finding_key(f), (None, None))[0],
            last_seen=seen.get(finding_key(f), (None, None))[1],
        )
        for f in resolved
    )
    return PatternReport(
        run=to_summary(run),
        previous=None if previous is None else to_summary(previous),
        records=tuple(records),
    )


def _seen_range(
    session: Session, run: Run, keys: set[tuple[str, str, str]], since: datetime | None
) -> dict[tuple[str, str, str], tuple[datetime, datetime]]:
    """(first, last) start time of the runs up to `run` whose findings have each key."""
    if not keys:
        return {}
    key = tuple_(NetworkFindingRow.kind, NetworkFindingRow.value, NetworkFindingRow.code)
    query = (
        select(
            NetworkFindingRow.kind,
            NetworkFindingRow.value,
            NetworkFindingRow.code,
            func.min(Run.started_at),
            func.max(Run.started_at),
        )
        .join(Run, Run.id == NetworkFindingRow.run_id)
        .where(key.in_(sorted(keys)), _same_fleet(run), Run.started_at <= run.started_at)
        .group_by(NetworkFindingRow.kind, NetworkFindingRow.value, NetworkFindingRow.code)
    )
    if since is not None:
        query = query.where(Run.started_at >= min(as_utc(since), run.started_at))
    return {
        (kind, value, code): (as_utc(first), as_utc(last))
        for kind, value, code, first, last in session.execute(query)
    }


def run_diff_parts(
    session: Session, before: int, after: int
) -> tuple[list[DeviceState], list[DeviceState], list[NetworkFinding], list[NetworkFinding]]:
    """Device states and network findings of two runs, for `history_models.diff_*`."""
    return (
        device_states(session, before),
        device_states(session, after),
        load_network_findings(session, before),
        load_network_findings(session, after),
    )


def load_reports_where(
    session: Session,
    run_id: int,
    *,
    category: str | None = None,
    code: str | None = None,
    reachable: bool | None = None,
) -> list[DeviceReport]:
    """The run's device reports with a finding above info of `category`, a finding `code`, and
    the given reachability (each filter optional), in the order they were saved."""
    query = reports_query(run_id)
    if reachable is not None:
        query = query.where(DeviceResult.reachable.is_(reachable))
    if category is not None:
        query = query.where(
            exists().where(
                FindingRow.result_id == DeviceResult.id,
                FindingRow.category == category,
                FindingRow.severity != "info",
            )
        )
    if code is not None:
        query = query.where(
            exists().where(FindingRow.result_id == DeviceResult.id, FindingRow.code == code)
        )
    return [to_report(row) for row in session.scalars(query)]


__all__ = [
    "DeviceNotFoundError",
    "device_history",
    "device_states",
    "history_statement",
    "latest_run",
    "load_reports_where",
    "pattern_report",
    "previous_run",
    "resolve_device",
]
