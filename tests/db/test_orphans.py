"""A run whose process died is marked `interrupted` by the next start; live runs are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, update

from orchestrator.models import DeviceReport
from orchestrator.store import Store
from orchestrator.store.schema import Run

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import sys, time
    from orchestrator.models import DeviceReport
    from orchestrator.store import Store

    store = Store.open(sys.argv[1])
    run_id = store.start_run(source="demo", fleet="f", devices_total=3, options={})
    store.save_reports(run_id, [DeviceReport(uuid="done-1", name="demo-done", reachable=True)])
    print(run_id, flush=True)
    time.sleep(120)
    """
)


def _start_and_kill_a_run(db_url: str) -> int:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        line = child.stdout.readline()
        assert line.strip().isdigit(), f"child printed {line!r}"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    return int(line)


def test_killed_run_becomes_interrupted_and_keeps_finished_devices(
    store: Store, db_url: str
) -> None:
    live_id = store.start_run(source="demo", fleet="f", devices_total=1, options={})
    dead_id = _start_and_kill_a_run(db_url)
    assert store.get_run(dead_id).status == "running"

    assert store.recover_orphans() == [dead_id]

    dead = store.get_run(dead_id)
    assert dead.status == "interrupted"
    assert dead.finished_at is not None
    assert dead.devices_reached == 1
    assert [r.uuid for r in store.load_reports(dead_id)] == ["done-1"]
    live = store.get_run(live_id)
    assert (live.status, live.finished_at) == ("running", None)
    assert store.recover_orphans() == []


def test_runs_of_other_hosts_are_not_touched(store: Store, db_url: str) -> None:
    run_id = store.start_run(source="demo", fleet=None, devices_total=0, options={})
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(Run).where(Run.id == run_id).values(host="elsewhere", pid=2**22 + 7)
            )
    finally:
        engine.dispose()
    assert store.recover_orphans() == []
    assert store.get_run(run_id).status == "running"


def test_a_run_reported_after_recovery_still_round_trips(store: Store, db_url: str) -> None:
    dead_id = _start_and_kill_a_run(db_url)
    store.recover_orphans()
    late = DeviceReport(uuid="late", name="demo-late", reachable=False, error="gone")
    store.save_reports(dead_id, [late])
    assert [r.uuid for r in store.load_reports(dead_id)] == ["done-1", "late"]


def test_a_reused_pid_does_not_keep_a_dead_run_alive(store: Store, db_url: str) -> None:
    """The pid now belongs to a process that started after the run: the run's process is gone."""
    run_id = store.start_run(source="demo", fleet=None, devices_total=0, options={})
    newcomer = subprocess.Popen(["sleep", "60"])
    try:
        engine = create_engine(db_url)
        try:
            with engine.begin() as connection:
                connection.execute(
                    update(Run)
                    .where(Run.id == run_id)
                    .values(
                        pid=newcomer.pid, started_at=datetime.now(timezone.utc) - timedelta(hours=1)
                    )
                )
        finally:
            engine.dispose()
        assert store.recover_orphans() == [run_id]
    finally:
        newcomer.kill()
        newcomer.wait(timeout=30)
