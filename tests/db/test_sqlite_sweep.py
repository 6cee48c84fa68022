"""A sweep on a current SQLite file writes through sqlite3 alone, exactly what `Store` writes."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean

from orchestrator.errors import StoreError
from orchestrator.models import NetworkFinding, StepOutput
from orchestrator.store import RunNotFoundError, Store
from orchestrator.store.common import DEFAULT_MAX_STEP_OUTPUT_BYTES
from orchestrator.store.revisions import shipped_head
from orchestrator.store.sqlite_schema import SCHEMA_REVISION
from orchestrator.store.sqlite_sweep import (
    BOOLEAN_COLUMNS,
    DATETIME_COLUMNS,
    JSON_COLUMNS,
    NULLABLE_JSON,
    SQLiteSweepStore,
    open_sweep_store,
    sqlite_file,
)
from orchestrator.store.tables import UTCDateTime, metadata
from orchestrator.sweep import result_writer
from tests.db.conftest import rich_report, unreachable_report

REPO = Path(__file__).resolve().parents[2]
SECOND = "f" * 32
FINDING = NetworkFinding(
    kind="gateway",
    value="192.168.1.1",
    category="vpn",
    code="vpn.blocked",
    devices=(SECOND,),
    affected=1,
    total=2,
    summary="VPN blocked on one LAN",
    remediation="open TCP 443 to the VPN",
    unreachable=False,
)
NOW_COLUMNS = {("runs", "started_at"), ("runs", "finished_at")}
"""Set from the clock when the run starts and ends: the only values two runs cannot share."""


def current_file(tmp_path: Path, name: str) -> str:
    """URL of a SQLite file at the newest revision (created by `Store`), no runs in it."""
    url = f"sqlite:///{tmp_path / name}"
    Store.open(url).close()
    return url


def typed_columns(kind: type) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, kind):
                found.setdefault(table.name, set()).add(column.name)
    return {name: frozenset(columns) for name, columns in found.items()}


def sweep(store: Any) -> int:
    """What a sweep writes: two batches (one device stored twice), causes, findings, close."""
    run_id = store.start_run(source="inventory", fleet="lab", devices_total=3, options={"a": 1})
    store.save_reports(run_id, [rich_report(), unreachable_report()])
    cleaned = (  # stored cleaned (NUL, lone surrogate) and cut to the byte cap
        StepOutput("odd", "\x00caf\u00e9 \ud800" + "\u00e9" * DEFAULT_MAX_STEP_OUTPUT_BYTES, 0),
        StepOutput("long", "y" * (DEFAULT_MAX_STEP_OUTPUT_BYTES + 1), 0, duration_s=2.0),
    )
    first = rich_report()
    later = replace(rich_report(SECOND, "second"), observations=(), steps=first.steps + cleaned)
    offline = unreachable_report()
    earlier = offline.finished_at - timedelta(hours=1)  # the device's newer identity stays
    again = replace(
        offline, error="gone again", name="old-name", started_at=earlier, finished_at=earlier
    )
    store.save_reports(run_id, [later, again])
    store.set_network_causes(run_id, {SECOND: "network issue, not this device: gateway"})
    store.save_network_findings(run_id, [FINDING])
    store.finish_run(run_id, "completed")
    return run_id


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as SQLite holds it, minus the run's clock readings."""
    connection = sqlite3.connect(sqlite_file(url))
    connection.row_factory = sqlite3.Row
    tables = {}
    for table in metadata.sorted_tables:
        rows = connection.execute(f"SELECT * FROM {table.name} ORDER BY id").fetchall()
        tables[table.name] = [
            {k: row[k] for k in row.keys() if (table.name, k) not in NOW_COLUMNS}  # noqa: SIM118
            for row in rows
        ]
    connection.close()
    return tables


def test_the_column_types_it_converts_are_those_the_tables_declare() -> None:
    assert typed_columns(JSON) == JSON_COLUMNS
    assert typed_columns(UTCDateTime) == DATETIME_COLUMNS
    assert typed_columns(Boolean) == BOOLEAN_COLUMNS
    nullable = {
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, JSON) and column.type.none_as_null
    }
    assert nullable == NULLABLE_JSON


def test_it_writes_every_row_exactly_as_store_does(tmp_path: Path) -> None:
    by_store, by_sqlite = current_file(tmp_path, "a.db"), current_file(tmp_path, "b.db")
    with Store.open(by_store) as store:
        sweep(store)
    writer = open_sweep_store(by_sqlite)
    assert isinstance(writer, SQLiteSweepStore)
    sweep(writer)
    writer.close()
    written, expected = dump(by_sqlite), dump(by_store)
    assert written == expected
    assert len(written["device_results"]) == 3
    assert all(written.values()), "every table holds rows to compare"


def test_what_it_wrote_reads_back_through_the_history_queries(tmp_path: Path) -> None:
    url = current_file(tmp_path, "orch.db")
    writer = open_sweep_store(url)
    run_id = sweep(writer)
    summary = writer.finish_run(run_id, "completed")
    writer.close()
    with Store.open(url) as store:
        reports = {report.uuid: report for report in store.load_reports(run_id)}
        assert replace(reports[SECOND], steps=()) == replace(
            rich_report(SECOND, "second"),
            observations=(),
            steps=(),
            network_cause="network issue, not this device: gateway",
        )
        *steps, odd, long = reports[SECOND].steps
        assert tuple(steps) == rich_report().steps
        assert odd.output.startswith("\ufffdcaf\u00e9 \ufffd\u00e9")
        assert len(odd.output.encode()) == DEFAULT_MAX_STEP_OUTPUT_BYTES  # cut between characters
        assert long.output == "y" * DEFAULT_MAX_STEP_OUTPUT_BYTES
        assert odd.truncated and long.truncated and long.duration_s == 2.0
        assert reports[unreachable_report().uuid].error == "gone again"
        assert store.load_network_findings(run_id) == [FINDING]
        stored = store.get_run(run_id)
    assert stored == summary
    assert (stored.devices_reached, stored.devices_with_problems) == (2, 3)
    assert stored.started_at.tzinfo is not None
    assert stored.started_at <= stored.finished_at


def test_a_new_or_current_plain_file_gets_it_anything_else_gets_store(tmp_path: Path) -> None:
    current = current_file(tmp_path, "current.db")
    new = f"sqlite:///{tmp_path / 'sub' / 'new.db'}"
    for url in (current, new):
        chosen = open_sweep_store(url)
        assert isinstance(chosen, SQLiteSweepStore), url
        chosen.close()
    for url in (f"{current}?timeout=5", "sqlite://"):
        store = open_sweep_store(url)
        assert isinstance(store, Store), url
        store.close()
    older = sqlite3.connect(tmp_path / "current.db")
    older.execute("UPDATE alembic_version SET version_num = '0001'")
    older.commit()
    older.close()
    assert SQLiteSweepStore.open_current(current, tmp_path / "current.db", 1024) is None


def schema(path: Path) -> dict[str, Any]:
    """Tables, columns, indexes, foreign keys and revision of a SQLite file, comparable."""
    connection = sqlite3.connect(path)
    found: dict[str, Any] = {
        "revision": connection.execute("SELECT version_num FROM alembic_version").fetchall(),
        "objects": sorted(
            (
                kind,
                name,
                table,
                " ".join((sql or "").replace("(", " ( ").replace(")", " ) ").split()),
            )
            for kind, name, table, sql in connection.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
            )
        ),
    }
    for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        for pragma in ("table_info", "foreign_key_list"):
            found[f"{table}.{pragma}"] = connection.execute(f"PRAGMA {pragma}({table})").fetchall()
        # (creation order aside: SQLAlchemy's own order of a table's indexes varies by process)
        indexes = connection.execute(f"PRAGMA index_list({table})").fetchall()
        found[f"{table}.indexes"] = sorted(row[1:] for row in indexes)
    connection.close()
    return found


def test_a_new_file_it_creates_has_the_schema_store_creates(tmp_path: Path) -> None:
    current_file(tmp_path, "by-store.db")
    open_sweep_store(f"sqlite:///{tmp_path / 'by-ddl.db'}").close()
    assert shipped_head() == SCHEMA_REVISION, "a new migration: update sqlite_schema.py"
    assert schema(tmp_path / "by-ddl.db") == schema(tmp_path / "by-store.db")


def test_a_run_it_does_not_have_and_a_broken_database_are_one_line_errors(tmp_path: Path) -> None:
    url = current_file(tmp_path, "orch.db")
    writer = open_sweep_store(url)
    with pytest.raises(RunNotFoundError, match="no run 99"):
        writer.save_reports(99, [rich_report()])
    run_id = writer.start_run(source="inventory", fleet=None, devices_total=1, options={})
    broken = sqlite3.connect(tmp_path / "orch.db")
    broken.execute("DROP TABLE findings")
    broken.close()
    with pytest.raises(StoreError) as raised:
        writer.save_reports(run_id, [rich_report()])
    assert str(raised.value) == f"database {url}: no such table: findings"
    writer.set_devices_total(run_id, 2)  # the failed batch left no transaction open
    writer.close()


def test_it_marks_runs_whose_process_is_gone_interrupted(tmp_path: Path) -> None:
    url = current_file(tmp_path, "orch.db")
    writer = open_sweep_store(url)
    orphan = writer.start_run(source="inventory", fleet=None, devices_total=0, options={})
    alive = writer.start_run(source="inventory", fleet=None, devices_total=0, options={})
    dead = sqlite3.connect(tmp_path / "orch.db")
    dead.execute("UPDATE runs SET pid = 0 WHERE id = ?", (orphan,))
    dead.commit()
    dead.close()
    assert writer.recover_orphans() == [orphan]
    writer.close()
    with Store.open(url) as store:
        assert store.get_run(orphan).status == "interrupted"
        assert store.get_run(alive).status == "running"


SWEEP_PROCESS = """
import json, pickle, sys
from orchestrator.store.sqlite_sweep import open_sweep_store

with open(sys.argv[2], "rb") as file:
    report = pickle.load(file)
store = open_sweep_store(sys.argv[1])
store.recover_orphans()
run_id = store.start_run(source="inventory", fleet="lab", devices_total=1, options={})
store.save_reports(run_id, [report])
summary = store.finish_run(run_id, "completed")
store.close()
print(json.dumps({"status": summary.status, "sqlalchemy": "sqlalchemy" in sys.modules}))
"""


def test_a_sweep_process_on_a_current_file_never_imports_sqlalchemy(tmp_path: Path) -> None:
    url = current_file(tmp_path, "orch.db")
    report = tmp_path / "report.pickle"
    report.write_bytes(pickle.dumps(rich_report()))
    done = subprocess.run(
        [sys.executable, "-c", SWEEP_PROCESS, url, str(report)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout) == {"status": "completed", "sqlalchemy": False}
    with Store.open(url) as store:
        assert store.load_reports(store.latest_run_id()) == [rich_report()]


class FsyncSpy:
    """Records the file and thread of every `os.fsync`, then really syncs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self._fail = fail
        self._real = os.fsync
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, descriptor: int) -> None:
        self.calls.append((os.readlink(f"/proc/self/fd/{descriptor}"), threading.get_ident()))
        if self._fail:
            raise OSError(errno.EIO, "Input/output error")
        self._real(descriptor)

    def files(self) -> list[str]:
        return [Path(name).name for name, _ in self.calls]


def started_writer(tmp_path: Path) -> tuple[str, SQLiteSweepStore, int]:
    """A current file's URL, its sweep writer, and a run started in it."""
    url = current_file(tmp_path, "orch.db")
    writer = open_sweep_store(url)
    assert isinstance(writer, SQLiteSweepStore)
    run_id = writer.start_run(source="inventory", fleet=None, devices_total=2, options={})
    return url, writer, run_id


def test_every_commit_is_on_disk_before_it_returns_unless_the_caller_syncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = FsyncSpy(monkeypatch)
    url, writer, run_id = started_writer(tmp_path)
    writer.save_reports(run_id, [rich_report()])
    assert spy.files() == ["orch.db-wal", "orch.db-wal"]  # after each of the two commits
    writer.save_reports(run_id, [unreachable_report()], sync=False)
    assert len(spy.calls) == 2  # committed, not yet waited for
    writer.sync()
    writer.finish_run(run_id, "completed")
    assert spy.files() == ["orch.db-wal"] * 4
    writer.close()
    with Store.open(url) as store:
        assert len(store.load_reports(run_id)) == 2


def test_a_disk_that_fails_to_sync_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, writer, run_id = started_writer(tmp_path)
    FsyncSpy(monkeypatch, fail=True)
    with pytest.raises(StoreError) as raised:
        writer.save_reports(run_id, [rich_report()])
    wal = tmp_path / "orch.db-wal"
    assert str(raised.value) == f"database {url}: cannot sync {wal}: Input/output error"
    writer.close()


def test_a_sweep_commits_on_its_event_loop_and_waits_for_the_disk_on_another_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _url, writer, run_id = started_writer(tmp_path)
    spy = FsyncSpy(monkeypatch)
    commits: list[tuple[bool, int]] = []
    save_reports = writer.save_reports

    def watched(run: int, reports: Any, *, sync: bool = True) -> None:
        commits.append((sync, threading.get_ident()))
        save_reports(run, reports, sync=sync)

    monkeypatch.setattr(writer, "save_reports", watched)

    async def main() -> int:
        batching = result_writer(writer, run_id)
        await asyncio.gather(batching.put(rich_report()), batching.put(unreachable_report()))
        assert spy.files() == ["orch.db-wal"]  # on disk when put returned
        await batching.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert commits == [(False, loop_thread)]
    assert [thread for _, thread in spy.calls] != [loop_thread]
    writer.close()
