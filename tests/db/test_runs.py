"""Run bookkeeping: counts, listing and filters, lookups, secrets kept out of the database."""

from __future__ import annotations

import dataclasses
import os
import socket
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select, update

from orchestrator.errors import StoreError
from orchestrator.models import DeviceReport, Finding
from orchestrator.store import RunNotFoundError, Store
from orchestrator.store.schema import Run


def _set_started(db_url: str, run_id: int, started: datetime) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(update(Run).where(Run.id == run_id).values(started_at=started))
    finally:
        engine.dispose()


def test_finish_run_counts_reached_and_problem_devices(
    store: Store, make_report, make_unreachable
) -> None:
    info_only = DeviceReport(
        uuid="healthy",
        name="demo-healthy",
        reachable=True,
        findings=(Finding("dns.ok", "dns", "info", "DNS resolves"),),
    )
    warning = DeviceReport(
        uuid="warn",
        name="demo-warn",
        reachable=True,
        findings=(Finding("api.slow", "api", "warning", "slow API"),),
    )
    reports = [make_report(), make_unreachable(), info_only, warning]
    run_id = store.start_run(source="demo", fleet="f", devices_total=5, options={})
    store.save_reports(run_id, reports)

    live = store.get_run(run_id)
    assert (live.status, live.devices_reached, live.devices_with_problems) == ("running", 3, 3)
    assert live.finished_at is None

    summary = store.finish_run(run_id, "completed")

    expected_problems = sum(not r.healthy for r in reports)
    assert summary.devices_reached == sum(r.reachable for r in reports) == 3
    assert summary.devices_with_problems == expected_problems == 3
    assert summary.devices_total == 5
    assert summary.status == "completed"
    assert summary.finished_at is not None and summary.finished_at >= summary.started_at
    assert store.get_run(run_id) == summary


def test_finish_run_rejects_an_unknown_status(store: Store) -> None:
    run_id = store.start_run(source="demo", fleet=None, devices_total=0, options={})
    with pytest.raises(ValueError, match="running, completed, interrupted, failed"):
        store.finish_run(run_id, "done")


def test_set_devices_total(store: Store) -> None:
    run_id = store.start_run(source="balena", fleet="f", devices_total=0, options={})
    store.set_devices_total(run_id, 2000)
    assert store.get_run(run_id).devices_total == 2000


def test_unknown_run_is_a_usage_error(store: Store) -> None:
    with pytest.raises(RunNotFoundError) as caught:
        store.get_run(42)
    assert str(caught.value) == "no run 42; `orch runs` lists them"
    assert caught.value.exit_code == 2
    assert isinstance(caught.value, StoreError)
    for call in (
        lambda: store.load_reports(42),
        lambda: store.load_network_findings(42),
        lambda: store.save_reports(42, [DeviceReport(uuid="x", name="x", reachable=True)]),
        lambda: store.finish_run(42, "completed"),
    ):
        with pytest.raises(RunNotFoundError):
            call()


def test_list_runs_filters_by_fleet_status_and_time(store: Store, db_url: str) -> None:
    assert store.latest_run_id() is None
    assert store.list_runs() == []
    base = datetime(2026, 1, 10, 3, 0, tzinfo=timezone.utc)
    ids = {}
    for day, (fleet, status) in enumerate(
        [("north", "completed"), ("north", "failed"), ("south", "completed"), ("north", None)]
    ):
        run_id = store.start_run(source="balena", fleet=fleet, devices_total=1, options={})
        _set_started(db_url, run_id, base + timedelta(days=day))
        if status:
            store.finish_run(run_id, status)
        ids[day] = run_id

    assert [r.id for r in store.list_runs()] == [ids[3], ids[2], ids[1], ids[0]]
    assert [r.id for r in store.list_runs(fleet="north")] == [ids[3], ids[1], ids[0]]
    assert [r.id for r in store.list_runs(fleet="north", status="completed")] == [ids[0]]
    assert [r.id for r in store.list_runs(status="running")] == [ids[3]]
    since = base + timedelta(days=1)
    assert [r.id for r in store.list_runs(since=since)] == [ids[3], ids[2], ids[1]]
    naive_since = since.replace(tzinfo=None) + timedelta(hours=1)
    assert [r.id for r in store.list_runs(since=naive_since)] == [ids[3], ids[2]]
    assert [r.id for r in store.list_runs(limit=2)] == [ids[3], ids[2]]
    assert store.list_runs(fleet="west") == []
    assert store.latest_run_id() == ids[3]
    assert all(r.started_at.tzinfo is not None for r in store.list_runs())


def test_options_are_stored_without_secrets(store: Store, db_url: str) -> None:
    options = {
        "concurrency": 50,
        "probes": ("time", "dns"),
        "api_token": "tok-AAAA",
        "BALENA_API_KEY": "tok-BBBB",
        "ssh": {"password": "tok-CCCC", "user": "root", "client_secret": "tok-DDDD"},
        "ApiKey": "tok-EEEE",
        "db": "postgresql://orch:tok-FFFF@db.example:5432/orch",
        "timeout": 30.5,
    }
    run_id = store.start_run(source="balena", fleet="f", devices_total=0, options=options)
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(select(Run.options).where(Run.id == run_id)).scalar_one()
            raw = str(connection.exec_driver_sql("SELECT options FROM runs").all())
    finally:
        engine.dispose()
    assert stored == {
        "concurrency": 50,
        "probes": ["time", "dns"],
        "ssh": {"user": "root"},
        "db": "postgresql://orch:***@db.example:5432/orch",
        "timeout": 30.5,
    }
    assert "tok-" not in raw


def test_run_records_host_pid_and_version(store: Store, db_url: str) -> None:
    run_id = store.start_run(source="demo", fleet=None, devices_total=0, options={})
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            host, pid, version = connection.execute(
                select(Run.host, Run.pid, Run.orch_version).where(Run.id == run_id)
            ).one()
    finally:
        engine.dispose()
    assert (host, pid) == (socket.gethostname(), os.getpid())
    assert version


def test_reports_of_a_finished_run_can_still_be_corrected(store: Store, make_report) -> None:
    run_id = store.start_run(source="demo", fleet=None, devices_total=1, options={})
    store.save_reports(run_id, [make_report()])
    store.finish_run(run_id, "completed")
    fixed = dataclasses.replace(make_report(), findings=())
    store.save_reports(run_id, [fixed])
    assert store.finish_run(run_id, "completed").devices_with_problems == 0
