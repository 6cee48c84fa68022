"""A sweep's writes to a SQLite database already at the newest revision, through sqlite3 alone.

Importing SQLAlchemy costs a sweep more CPU than any other module (on the project's machine
0.8 G instructions, 40 % of a one-device run), and a sweep on SQLite only needs a dozen
statements: start the run, store batches of device results, record network findings and
causes, close the run, mark orphans interrupted. They are written out here for SQLite, with the
values SQLAlchemy would bind (naive UTC datetimes in its text format, JSON text, booleans as
1/0), from the same `convert` functions. `tests/db/test_sqlite_sweep.py` proves the tables end
up identical to what `Store` writes and that the history reads load every report back.

`open_sweep_store` uses this writer when the URL is a plain SQLite file whose schema is current,
or a file that does not exist yet (created from `sqlite_schema`); anything else (an older file,
PostgreSQL, URL options) gets `Store`, which migrates or refuses as it always does.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from orchestrator.errors import StoreError
from orchestrator.models import DeviceReport, NetworkFinding, RunSummary
from orchestrator.store.common import (
    DEFAULT_MAX_STEP_OUTPUT_BYTES,
    SweepStore,
    check_status,
    default_url,
    new_run_values,
    not_found,
    process_alive,
)
from orchestrator.store.convert import (
    device_identity_values,
    finding_values,
    network_finding_values,
    result_values,
    to_summary,
)
from orchestrator.store.revisions import shipped_head
from orchestrator.store.rows import SQLITE_BOOLEAN, positional_rows
from orchestrator.store.sqlite_schema import SCHEMA_REVISION, statements

JSON_COLUMNS: dict[str, frozenset[str]] = {
    "runs": frozenset({"options"}),
    "devices": frozenset({"labels"}),
    "device_results": frozenset({"labels", "observations", "steps"}),
    "findings": frozenset({"evidence"}),
    "network_findings": frozenset({"devices"}),
}
"""JSON columns per table (tests compare these three maps with `tables`)."""
DATETIME_COLUMNS: dict[str, frozenset[str]] = {
    "runs": frozenset({"started_at", "finished_at"}),
    "devices": frozenset({"first_seen_at", "last_seen_at"}),
    "device_results": frozenset({"started_at", "finished_at"}),
}
BOOLEAN_COLUMNS: dict[str, frozenset[str]] = {
    "device_results": frozenset({"reachable", "output_truncated"}),
    "findings": frozenset({"is_root_cause"}),
    "network_findings": frozenset({"unreachable"}),
}
NULLABLE_JSON = frozenset({("device_results", "observations"), ("device_results", "steps")})
"""JSON columns where None is SQL NULL; elsewhere it is the JSON text ``null``, as SQLAlchemy
writes it."""
_IDENTITY_UPDATES = ("name", "fleet", "site", "labels", "public_address", "last_seen_at")


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL (no options, escapes or ``~``), else None."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = url[len(prefix) :]
    if not path or path == ":memory:" or path.startswith("file:") or any(c in path for c in "?%~"):
        return None
    return Path(path)


def open_sweep_store(
    url: str | None, *, max_step_output_bytes: int = DEFAULT_MAX_STEP_OUTPUT_BYTES
) -> SweepStore:
    """The store a sweep writes to: this module's writer for a current SQLite file, else `Store`."""
    url = url or default_url()
    path = sqlite_file(url)
    writer = None
    if path is not None and path.is_file():
        writer = SQLiteSweepStore.open_current(url, path, max_step_output_bytes)
    elif path is not None and not path.exists() and shipped_head() == SCHEMA_REVISION:
        writer = SQLiteSweepStore.create(url, path, max_step_output_bytes)
    if writer is not None:
        return writer
    from orchestrator.store.db import Store

    return Store.open(url, max_step_output_bytes=max_step_output_bytes)


class SQLiteSweepStore:
    """Everything a sweep writes, on one sqlite3 connection shared by the sweep's threads."""

    def __init__(
        self, connection: sqlite3.Connection, url: str, path: Path, max_step_bytes: int
    ) -> None:
        self._connection = connection
        self._url = url
        self._wal = path.with_name(path.name + "-wal")
        self._max_step_bytes = max_step_bytes
        self._lock = threading.Lock()

    @classmethod
    def open_current(cls, url: str, path: Path, max_step_bytes: int) -> SQLiteSweepStore | None:
        """The writer for ``path`` when its schema is at the shipped head; None otherwise."""
        if max_step_bytes <= 0:
            raise ValueError("max_step_output_bytes must be positive")
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return None
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            current = row is not None and row[0] == shipped_head()
            if current:
                connection.execute("PRAGMA foreign_keys=ON")
                connection.execute("PRAGMA journal_mode=WAL")
                # Commits do not wait for the disk; `sync` does, after each of them
                # (`save_reports(..., sync=False)` leaves that to the caller).
                connection.execute("PRAGMA synchronous=NORMAL")
                return cls(connection, url, path, max_step_bytes)
        except sqlite3.Error:
            pass
        connection.close()
        return None

    @classmethod
    def create(cls, url: str, path: Path, max_step_bytes: int) -> SQLiteSweepStore | None:
        """Give a new file the newest schema (`sqlite_schema`) and open it; None when that
        fails, for `Store` to try and report. Taken under SQLite's write lock, so of two
        processes creating one file only the first builds the schema."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error):
            return None
        try:
            connection.execute("BEGIN IMMEDIATE")
            if connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                for statement in statements():
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO alembic_version (version_num) VALUES (?)", (SCHEMA_REVISION,)
                )
            connection.execute("COMMIT")
        except sqlite3.Error:
            return None
        finally:
            connection.close()
        return cls.open_current(url, path, max_step_bytes)

    @property
    def url(self) -> str:
        return self._url

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    # -- the sweep's writes -----------------------------------------------------------------

    def start_run(
        self, *, source: str, fleet: str | None, devices_total: int, options: dict[str, Any]
    ) -> int:
        """Record a new `running` run on this host and process; returns its id."""
        values = new_run_values(
            source=source, fleet=fleet, devices_total=devices_total, options=options
        )
        with self._transaction() as cursor:
            self._insert(cursor, "runs", [values])
            if not cursor.lastrowid:
                raise RuntimeError("the database returned no id for the new run")
            return cursor.lastrowid

    def save_reports(
        self, run_id: int, reports: Sequence[DeviceReport], *, sync: bool = True
    ) -> None:
        """Store device reports in one transaction, replacing earlier ones of the same devices.

        ``sync=False`` returns once committed, before the disk has it: call `sync` before
        treating the reports as stored (a sweep commits on its event loop's thread and waits
        for the disk on another).
        """
        latest = {report.uuid: report for report in reports}
        if not latest:
            return
        uuids = list(latest)
        marks = ", ".join("?" * len(uuids))
        with self._transaction(sync=sync) as cursor:
            run = self._run_row(cursor, run_id)
            cursor.execute(
                f"DELETE FROM device_results WHERE run_id = ? AND device_uuid IN ({marks})",
                [run_id, *uuids],
            )
            self._insert(
                cursor,
                "device_results",
                [result_values(run_id, r, self._max_step_bytes) for r in latest.values()],
            )
            ids = dict(
                cursor.execute(
                    "SELECT device_uuid, id FROM device_results "
                    f"WHERE run_id = ? AND device_uuid IN ({marks})",
                    [run_id, *uuids],
                )
            )
            found: list[dict[str, Any]] = []
            for report in latest.values():
                result_id = ids[report.uuid]
                for row in finding_values(report):
                    row["result_id"] = result_id
                    found.append(row)
            self._insert(cursor, "findings", found)
            self._insert(
                cursor,
                "devices",
                device_identity_values(run.fleet, latest.values()),
                suffix=(
                    " ON CONFLICT (uuid) DO UPDATE SET "
                    + ", ".join(f"{name} = excluded.{name}" for name in _IDENTITY_UPDATES)
                    + " WHERE excluded.last_seen_at >= devices.last_seen_at"
                ),
            )

    def set_devices_total(self, run_id: int, total: int) -> None:
        """Correct the number of devices a run covers."""
        with self._transaction() as cursor:
            self._run_row(cursor, run_id)
            cursor.execute("UPDATE runs SET devices_total = ? WHERE id = ?", (total, run_id))

    def set_network_causes(self, run_id: int, causes: dict[str, str]) -> None:
        """Record, per device uuid, that a network-wide finding explains its problem."""
        if not causes:
            return
        with self._transaction() as cursor:
            self._run_row(cursor, run_id)
            cursor.executemany(
                "UPDATE device_results SET network_cause = ? WHERE run_id = ? AND device_uuid = ?",
                [(cause, run_id, uuid) for uuid, cause in causes.items()],
            )

    def save_network_findings(self, run_id: int, findings: Sequence[NetworkFinding]) -> None:
        """Replace the run's network-wide findings with ``findings``."""
        with self._transaction() as cursor:
            self._run_row(cursor, run_id)
            cursor.execute("DELETE FROM network_findings WHERE run_id = ?", (run_id,))
            self._insert(
                cursor,
                "network_findings",
                [
                    network_finding_values(run_id, at, finding)
                    for at, finding in enumerate(findings)
                ],
            )

    def finish_run(self, run_id: int, status: str) -> RunSummary:
        """Close a run with ``status``, counting reached and problem devices from its results."""
        check_status(status)
        with self._transaction() as cursor:
            self._close_run(cursor, run_id, status)
            return to_summary(self._run_row(cursor, run_id))

    def recover_orphans(self) -> list[int]:
        """Mark `interrupted` the runs of this host still `running` whose process is gone."""
        recovered: list[int] = []
        with self._transaction() as cursor:
            cursor.execute(
                "SELECT * FROM runs WHERE status = 'running' AND host = ? ORDER BY id",
                (socket.gethostname(),),
            )
            for run in [_run(cursor, row) for row in cursor.fetchall()]:
                if not process_alive(run.pid, run.started_at):
                    self._close_run(cursor, run.id, "interrupted")
                    recovered.append(run.id)
        return recovered

    def sync(self) -> None:
        """Wait until every transaction committed so far is on disk (fsync of the WAL file).

        With ``synchronous=NORMAL`` a WAL commit is safe from a crash of orch but not of the
        machine until then; SQLite's own FULL level is this same sync inside each commit.
        """
        try:
            descriptor = os.open(self._wal, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except FileNotFoundError:  # checkpointed and removed: the database file has it all
            return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise StoreError(f"database {self._url}: cannot sync {self._wal}: {reason}") from None

    # -- helpers ----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, *, sync: bool = True) -> Iterator[sqlite3.Cursor]:
        """One transaction on the shared connection, committed on success and then, with
        ``sync``, on disk; sqlite3 errors become one-line `StoreError`s."""
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute("BEGIN")
                yield cursor
                cursor.execute("COMMIT")
            except BaseException as exc:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"database {self._url}: {_first_line(exc)}") from None
                raise
            finally:
                cursor.close()
        if sync:
            self.sync()

    def _insert(
        self, cursor: sqlite3.Cursor, table: str, rows: list[dict[str, Any]], suffix: str = ""
    ) -> None:
        if not rows:
            return
        names = tuple(rows[0])
        sql = (
            f"INSERT INTO {table} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))}){suffix}"
        )
        if len(rows) == 1:  # execute, unlike executemany, gives the row's id to lastrowid
            cursor.execute(sql, _bound(table, names, rows)[0])
        else:
            cursor.executemany(sql, _bound(table, names, rows))

    def _run_row(self, cursor: sqlite3.Cursor, run_id: int) -> SimpleNamespace:
        cursor.execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        row = cursor.fetchone()
        if row is None:
            raise not_found(run_id)
        return _run(cursor, row)

    def _close_run(self, cursor: sqlite3.Cursor, run_id: int, status: str) -> None:
        reached, problems = cursor.execute(
            "SELECT count(*) FILTER (WHERE reachable), "
            "count(*) FILTER (WHERE reachable = 0 OR EXISTS (SELECT 1 FROM findings "
            "WHERE findings.result_id = device_results.id AND findings.severity != 'info')) "
            "FROM device_results WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        cursor.execute(
            "UPDATE runs SET status = ?, finished_at = ?, devices_reached = ?, "
            "devices_with_problems = ? WHERE id = ?",
            (status, _datetime(datetime.now(timezone.utc)), reached, problems, run_id),
        )


def _bound(table: str, names: tuple[str, ...], rows: list[dict[str, Any]]) -> list[Any]:
    """The driver parameters of ``rows`` for columns ``names`` of ``table``."""
    return positional_rows(rows, names, [_converter(table, name) for name in names])


def _converter(table: str, column: str) -> Any:
    """How a value of ``table.column`` is bound, as SQLAlchemy binds it (None: as it is)."""
    if column in JSON_COLUMNS.get(table, ()):
        return _json_or_null if (table, column) in NULLABLE_JSON else _to_json
    if column in DATETIME_COLUMNS.get(table, ()):
        return _datetime
    if column in BOOLEAN_COLUMNS.get(table, ()):
        return SQLITE_BOOLEAN
    return None


_to_json = json.JSONEncoder(check_circular=False).encode
"""`json.dumps` with its defaults (SQLAlchemy's text exactly) minus the check for reference
cycles, which the documents `convert` builds cannot have: ~10 % of encoding them."""


def _json_or_null(value: Any) -> str | None:
    return None if value is None else _to_json(value)


def _datetime(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite text for a datetime, as naive UTC (aware values converted)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(" ", "microseconds")


def _loaded_datetime(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def _run(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> SimpleNamespace:
    """A `runs` row with attribute access, its datetimes loaded as aware UTC."""
    values = dict(zip((column[0] for column in cursor.description), row, strict=True))
    for name in DATETIME_COLUMNS["runs"]:
        values[name] = _loaded_datetime(values[name])
    return SimpleNamespace(**values)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
