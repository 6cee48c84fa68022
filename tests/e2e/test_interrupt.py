"""Killing a run mid-way loses no finished device and leaves no run stuck in `running`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main

ROOT = Path(__file__).parents[2]


@pytest.fixture
def runs_started():
    """Processes a test started; killed at the end whatever happened."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def start_run(db_path: Path, started: list) -> subprocess.Popen:
    """``orch diagnose`` of a 120-device demo fleet, its temporary files under ``db_path``'s dir."""
    temp = db_path.parent / "tmp"
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp)}
    command = [
        sys.executable,
        "-c",
        "from orchestrator.cli import main; main()",
        "diagnose",
        "--demo-devices",
        "120",
        "--concurrency",
        "3",
        "--db",
        f"sqlite:///{db_path}",
        "--format",
        "json",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started.append(process)
    return process


def stored_devices(db_path: Path) -> int:
    try:
        with sqlite3.connect(db_path, timeout=5) as connection:
            return connection.execute("select count(*) from device_results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def wait_for_devices(db_path: Path, process: subprocess.Popen, count: int) -> None:
    deadline = time.monotonic() + 120
    while stored_devices(db_path) < count:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the run stored no devices in time"
        time.sleep(0.2)


def read_back(db_path: Path) -> tuple[dict, dict]:
    url = f"sqlite:///{db_path}"
    runs = CliRunner().invoke(main, ["runs", "--db", url, "--format", "json"])
    (run,) = json.loads(runs.stdout)
    shown = CliRunner().invoke(main, ["show", str(run["id"]), "--db", url, "--format", "json"])
    return run, json.loads(shown.stdout)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_marks_the_run_interrupted_and_keeps_finished_devices(
    tmp_path: Path, sig, runs_started
) -> None:
    db_path = tmp_path / "orch.sqlite3"
    process = start_run(db_path, runs_started)
    wait_for_devices(db_path, process, 5)
    process.send_signal(sig)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err.decode()
    assert b"interrupted" in err
    run, document = read_back(db_path)
    assert run["status"] == "interrupted"
    assert run["finished_at"] is not None
    saved = document["devices"]
    assert 5 <= len(saved) < 120
    assert len(saved) == stored_devices(db_path)
    for device in saved:  # every stored device is complete, not half-written
        assert device["reachable"] and device["error"] is None
    assert not list((tmp_path / "tmp").iterdir()), "the demo fleet's files outlived the run"


def test_sigkill_leaves_an_orphan_that_the_next_start_marks_interrupted(
    tmp_path: Path, runs_started
) -> None:
    db_path = tmp_path / "orch.sqlite3"
    process = start_run(db_path, runs_started)
    wait_for_devices(db_path, process, 5)
    process.kill()
    process.communicate(timeout=30)
    with sqlite3.connect(db_path) as connection:
        (status,) = connection.execute("select status from runs").fetchone()
    assert status == "running"  # nobody could mark it: the process died at once
    run, document = read_back(db_path)  # opening the database recovers the orphan
    assert run["status"] == "interrupted"
    assert len(document["devices"]) >= 5
