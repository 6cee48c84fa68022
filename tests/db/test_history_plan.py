"""The history queries are served by indexes, not table scans (PostgreSQL EXPLAIN after ANALYZE,
SQLite EXPLAIN QUERY PLAN), on a database holding many runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, Select, create_engine, insert, select, text

from orchestrator.store import Store
from orchestrator.store.history import history_statement
from orchestrator.store.schema import DeviceResult, FindingRow, Run

RUNS, DEVICES = 300, 80
T0 = datetime(2026, 1, 1, 2, 0, tzinfo=timezone.utc)


def _uuid(n: int) -> str:
    return f"{n:08x}" + "c0ffee" * 4


@pytest.fixture
def loaded(store: Store, db_url: str) -> Iterator[Engine]:
    """RUNS nightly runs of DEVICES devices, one in five with a root cause, statistics fresh."""
    engine = create_engine(db_url)
    runs = [
        {
            "id": r + 1,
            "status": "completed",
            "started_at": T0 + timedelta(days=r),
            "finished_at": T0 + timedelta(days=r, minutes=5),
            "source": "balena:depots",
            "fleet": "depots",
            "devices_total": DEVICES,
            "devices_reached": DEVICES,
            "devices_with_problems": 0,
            "options": {},
            "host": "bench",
            "pid": 1,
            "orch_version": "test",
        }
        for r in range(RUNS)
    ]
    results, findings = [], []
    for r in range(RUNS):
        for d in range(DEVICES):
            result_id = r * DEVICES + d + 1
            results.append(
                {
                    "id": result_id,
                    "run_id": r + 1,
                    "device_uuid": _uuid(d),
                    "device_name": f"dev-{d}",
                    "reachable": d % 17 != 0,
                    "route": "direct root@198.18.0.1:22222",
                    "output_truncated": False,
                    "labels": [],
                }
            )
            if (d + r) % 5 == 0:
                findings.append(
                    {
                        "result_id": result_id,
                        "position": 0,
                        "code": "time.ntp_unreachable",
                        "category": "time",
                        "severity": "error",
                        "summary": "no NTP source answers",
                        "evidence": [],
                        "remediation": "allow UDP 123",
                        "is_root_cause": True,
                    }
                )
    with engine.begin() as connection:
        connection.execute(insert(Run), runs)
        connection.execute(insert(DeviceResult), results)
        connection.execute(insert(FindingRow), findings)
        connection.execute(text("ANALYZE"))
    try:
        yield engine
    finally:
        engine.dispose()


def _plan(engine: Engine, query: Select) -> str:
    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(prefix + str(compiled).replace("%", "%%")).all()
    return "\n".join(" ".join(str(part) for part in row) for row in rows)


def test_history_query_uses_the_device_index(loaded: Engine) -> None:
    plan = _plan(loaded, history_statement(_uuid(3), category="time", limit=100))

    assert "ix_device_results_device_uuid_run_id" in plan, plan
    if loaded.dialect.name == "postgresql":
        assert "Seq Scan on device_results" not in plan, plan
    else:
        assert "SCAN device_results" not in plan, plan


def test_run_lookups_use_the_run_index(loaded: Engine) -> None:
    by_run = select(DeviceResult.id).where(DeviceResult.run_id == 42)
    plan = _plan(loaded, by_run)

    if loaded.dialect.name == "postgresql":
        assert "uq_device_results_run_id_device_uuid" in plan, plan
    else:
        assert "SEARCH device_results USING COVERING INDEX" in plan and "(run_id=?)" in plan, plan
    findings = select(FindingRow.code).where(FindingRow.result_id.in_([5, 6, 7]))
    assert "ix_findings_result_id" in _plan(loaded, findings)
