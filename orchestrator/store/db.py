"""The `Store`: opening a database, migrating it, and every read and write of runs.

SQLite (the default, a file in the user data dir) is brought to the newest revision on open: a
new file is created straight from the tables, an older one migrated by Alembic. What a sweep
writes goes through SQLAlchemy Core (`bulk`, `runs`), except on a SQLite file that is new or
current, which `sqlite_sweep` writes with sqlite3 alone; only reads import the ORM, with the
queries that use it (`queries`, `history`). PostgreSQL is
migrated only by `orch db upgrade` (`Store.open(url, require_head=False).upgrade()`).
Every SQLAlchemy or Alembic failure leaves this module as a one-line `StoreError` whose text never
contains the database password.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import socket
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from orchestrator.errors import StoreError
from orchestrator.models import DeviceReport, NetworkFinding, RunSummary
from orchestrator.store import bulk, runs, tables
from orchestrator.store.common import (
    DEFAULT_MAX_STEP_OUTPUT_BYTES,
    RunNotFoundError,
    check_status,
    default_url,
    new_run_values,
    not_found,
    process_alive,
)
from orchestrator.store.convert import to_summary
from orchestrator.store.revisions import create_at_head, database_revision, shipped_head

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from orchestrator.history_models import DeviceHistory, PatternReport, PruneResult, RunDiff
    from orchestrator.store.schema import Run

PG_CONNECT_TIMEOUT_S = 10


def normalise_url(url: str) -> URL:
    """Parse a database URL; `postgresql://` and `postgres://` use the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            "invalid database URL (expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB)"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def migrations_config(url: URL, connection: Any = None) -> Any:
    """An Alembic config built in code: the installed `migrations` package, this URL, connection."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(importlib.resources.files("migrations")))
    rendered = url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


class Store:
    """Runs and device results in one database. Open with `Store.open`, close with `close`."""

    def __init__(self, engine: Engine, *, max_step_output_bytes: int) -> None:
        self._engine = engine
        self._max_step_output_bytes = max_step_output_bytes

    @classmethod
    def open(
        cls,
        url: str | None = None,
        *,
        max_step_output_bytes: int = DEFAULT_MAX_STEP_OUTPUT_BYTES,
        require_head: bool = True,
        create: bool = True,
    ) -> Store:
        """Connect to `url` (default: the SQLite file in the user data dir).

        SQLite is migrated to head here. PostgreSQL must already be at head unless
        `require_head` is False (what `orch db upgrade` and `orch db current` pass).
        With `create` False a SQLite file that does not exist is an error, not a new empty
        database (what commands that only read or trim stored runs pass).
        """
        if max_step_output_bytes <= 0:
            raise ValueError("max_step_output_bytes must be positive")
        parsed = normalise_url(url or default_url())
        if not create:
            _require_sqlite_file(parsed)
        engine = _create_engine(parsed)
        store = cls(engine, max_step_output_bytes=max_step_output_bytes)
        try:
            store._check_connection()
            current = store.current_revision()
            head = cls.head_revision()
            if current != head:
                store._check_known(current, head)
                if parsed.get_backend_name() == "sqlite":
                    if current is None:
                        store._create_if_empty()
                    if store.current_revision() != head:
                        store.upgrade()
                elif require_head:
                    raise StoreError(
                        f"database at revision {current or 'none'} (head is {head}): "
                        "run `orch db upgrade`"
                    )
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Release every connection."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    # -- migrations -------------------------------------------------------------------------

    def upgrade(self) -> str:
        """Migrate the database to the newest revision; returns that revision."""
        from alembic import command
        from alembic.util.exc import CommandError

        try:
            with self._translated(), self._engine.begin() as connection:
                command.upgrade(migrations_config(self._engine.url, connection), "head")
        except CommandError as exc:
            raise StoreError(_describe(exc, self._engine.url)) from None
        return self.head_revision()

    def _create_if_empty(self) -> None:
        """Give an empty SQLite database the newest schema straight from the tables.

        Taken under SQLite's write lock, so two orch processes opening one new file do not
        both create it; a database with any table in it is left to `upgrade`.
        """
        with self._translated(), self._engine.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            if not inspect(connection).get_table_names():
                create_at_head(connection, tables.metadata, self.head_revision())
            connection.commit()

    def current_revision(self) -> str | None:
        """The revision the database is at (None for an empty database)."""
        with self._translated(), self._engine.connect() as connection:
            return database_revision(connection)

    @staticmethod
    def head_revision() -> str:
        """The newest revision shipped with this orch."""
        head = shipped_head()
        if head is None:
            raise StoreError("no migrations found in the installed `migrations` package")
        return head

    def _check_connection(self) -> None:
        try:
            with self._engine.connect():
                pass
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open {_describe(exc, self._engine.url)}") from None

    def _check_known(self, current: str | None, head: str) -> None:
        if current is None:
            return
        from alembic.script import ScriptDirectory

        config = migrations_config(self._engine.url)
        known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
        if current not in known:
            raise StoreError(
                f"database at revision {current}, unknown to this orch (head is {head}): "
                "upgrade orch"
            )

    # -- writes -----------------------------------------------------------------------------

    def start_run(
        self, *, source: str, fleet: str | None, devices_total: int, options: dict[str, Any]
    ) -> int:
        """Record a new `running` run on this host and process; returns its id."""
        values = new_run_values(
            source=source, fleet=fleet, devices_total=devices_total, options=options
        )
        with self._transaction() as connection:
            return runs.insert_run(connection, values)

    def save_reports(self, run_id: int, reports: Sequence[DeviceReport]) -> None:
        """Store device reports in one transaction, replacing earlier ones of the same devices."""
        latest = {report.uuid: report for report in reports}
        if not latest:
            return
        with self._transaction() as connection:
            run = self._run_row(connection, run_id)
            bulk.save_results(
                connection, run_id, list(latest.values()), self._max_step_output_bytes
            )
            runs.upsert_devices(connection, run.fleet, latest.values())

    def set_devices_total(self, run_id: int, total: int) -> None:
        """Correct the number of devices a run covers (known only after listing the fleet)."""
        with self._transaction() as connection:
            self._run_row(connection, run_id)
            runs.set_devices_total(connection, run_id, total)

    def set_network_causes(self, run_id: int, causes: dict[str, str]) -> None:
        """Record, per device uuid, that a network-wide finding explains its problem."""
        if not causes:
            return
        with self._transaction() as connection:
            self._run_row(connection, run_id)
            runs.set_network_causes(connection, run_id, causes)

    def save_network_findings(self, run_id: int, findings: Sequence[NetworkFinding]) -> None:
        """Replace the run's network-wide findings with `findings`."""
        with self._transaction() as connection:
            self._run_row(connection, run_id)
            runs.replace_network_findings(connection, run_id, findings)

    def finish_run(self, run_id: int, status: str) -> RunSummary:
        """Close a run with `status`, counting reached and problem devices from stored results."""
        check_status(status)
        with self._transaction() as connection:
            runs.close_run(connection, run_id, status)
            return to_summary(self._run_row(connection, run_id))  # no such run: rolled back

    def recover_orphans(self) -> list[int]:
        """Mark `interrupted` the runs of this host still `running` whose process is gone."""
        recovered: list[int] = []
        with self._transaction() as connection:
            for run in runs.running_on_host(connection, socket.gethostname()):
                if not process_alive(run.pid, run.started_at):
                    runs.close_run(connection, run.id, "interrupted")
                    recovered.append(run.id)
        return recovered

    # -- reads ------------------------------------------------------------------------------

    def get_run(self, run_id: int) -> RunSummary:
        """One run; raises `RunNotFoundError` when there is none with this id."""
        from orchestrator.store import queries

        with self._session() as session:
            summary = queries.get_run(session, run_id)
        if summary is None:
            raise not_found(run_id)
        return summary

    def latest_run_id(self) -> int | None:
        """The most recently started run, if any."""
        from orchestrator.store import queries

        with self._session() as session:
            return queries.latest_run_id(session)

    def list_runs(
        self,
        *,
        fleet: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[RunSummary]:
        """Runs, newest first, optionally filtered by fleet, status and start time."""
        from orchestrator.store import queries

        with self._session() as session:
            return queries.list_runs(session, fleet=fleet, status=status, since=since, limit=limit)

    def load_reports(self, run_id: int) -> list[DeviceReport]:
        """Every stored device report of a run, as saved."""
        from orchestrator.store import queries

        with self._session() as session:
            self._run(session, run_id)
            return queries.load_reports(session, run_id)

    def load_report_summaries(self, run_id: int) -> list[DeviceReport]:
        """A run's stored reports without raw steps and observations (``sweep.slim``'s)."""
        from orchestrator.store import queries

        with self._session() as session:
            self._run(session, run_id)
            return queries.load_report_summaries(session, run_id)

    def load_network_findings(self, run_id: int) -> list[NetworkFinding]:
        """The network-wide findings of a run."""
        from orchestrator.store import queries

        with self._session() as session:
            self._run(session, run_id)
            return queries.load_network_findings(session, run_id)

    # -- history ----------------------------------------------------------------------------

    def device_history(
        self,
        device: str,
        *,
        since: datetime | None = None,
        category: str | None = None,
        limit: int = 100,
    ) -> DeviceHistory:
        """A device's results (uuid, 7+ char uuid prefix or name), newest first, changes marked."""
        from orchestrator.store import history

        with self._session() as session:
            identity = history.resolve_device(session, device)
            return history.device_history(
                session, identity, since=since, category=category, limit=limit
            )

    def network_patterns(
        self, run_id: int | None = None, *, since: datetime | None = None, fleet: str | None = None
    ) -> PatternReport:
        """A run's network findings (default: the latest run, of `fleet` if given) with status
        new/ongoing/resolved against the previous completed run, and first/last seen."""
        from orchestrator.store import history

        with self._session() as session:
            if run_id is None:
                run = history.latest_run(session, fleet)
                if run is None:
                    raise RunNotFoundError("no runs stored yet: run `orch diagnose` first")
            else:
                run = self._run(session, run_id)
            return history.pattern_report(session, run, since)

    def diff_runs(self, before: int, after: int) -> RunDiff:
        """Devices and networks that got worse or better from run `before` to run `after`."""
        from orchestrator.history_models import RunDiff, diff_devices, diff_networks
        from orchestrator.store import history, queries

        with self._session() as session:
            old_run, new_run = queries.get_run(session, before), queries.get_run(session, after)
            if old_run is None or new_run is None:
                raise not_found(before if old_run is None else after)
            old, new, old_net, new_net = history.run_diff_parts(session, before, after)
        devices, unchanged = diff_devices(old, new)
        return RunDiff(
            before=old_run,
            after=new_run,
            devices=devices,
            networks=diff_networks(old_net, new_net),
            unchanged=unchanged,
        )

    def load_reports_where(
        self,
        run_id: int,
        *,
        category: str | None = None,
        code: str | None = None,
        reachable: bool | None = None,
    ) -> list[DeviceReport]:
        """A run's device reports filtered by finding category (above info), code, reachability."""
        from orchestrator.store import history

        with self._session() as session:
            self._run(session, run_id)
            return history.load_reports_where(
                session, run_id, category=category, code=code, reachable=reachable
            )

    def prune(self, older_than: datetime, *, whole_runs: bool = False) -> PruneResult:
        """Remove raw step outputs and observations (or, `whole_runs`, whole runs) of runs
        started before `older_than`; says what went (`observations`: how many device results
        lost their observations)."""
        from orchestrator.store import queries

        with self._session() as session:
            return queries.prune(session, older_than, whole_runs=whole_runs)

    # -- plumbing ---------------------------------------------------------------------------

    @staticmethod
    def _run(session: Session, run_id: int) -> Run:
        from orchestrator.store.schema import Run

        run = session.get(Run, run_id)
        if run is None:
            raise not_found(run_id)
        return run

    @staticmethod
    def _run_row(connection: Connection, run_id: int) -> Any:
        run = runs.get_run(connection, run_id)
        if run is None:
            raise not_found(run_id)
        return run

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        """An ORM session in one transaction, committed on success; errors become `StoreError`.

        For reads: the ORM is imported here, on the first one, never by a sweep's writes."""
        from sqlalchemy.orm import Session

        with (
            self._translated(),
            Session(self._engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A Core connection in one transaction, committed on success; errors become
        `StoreError`."""
        with self._translated(), self._engine.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(_describe(exc, self._engine.url)) from None


def _create_engine(url: URL) -> Engine:
    """An engine for `url`, with SQLite's foreign keys on and PostgreSQL's connect timeout."""
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        _make_sqlite_dir(url)
    elif backend == "postgresql":
        kwargs["pool_pre_ping"] = True
        if "connect_timeout" not in url.query:
            kwargs["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    else:
        raise StoreError(
            f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
        )
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ArgumentError, ImportError) as exc:
        raise StoreError(_describe(exc, url)) from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_path(url: URL) -> Path | None:
    """The file a SQLite URL names (None: in memory or a `file:` URI)."""
    if url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return None
    return Path(url.database).expanduser()


def _require_sqlite_file(url: URL) -> None:
    """Refuse a SQLite URL whose file does not exist (a typo must not become a new database)."""
    if url.get_backend_name() != "sqlite":
        return
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        raise StoreError(
            f"no database at {path}: nothing has been stored there "
            "(run `orch diagnose` first, or check --db, ORCH_DB_URL and [database] url)"
        )


def _make_sqlite_dir(url: URL) -> None:
    path = _sqlite_path(url)
    if path is None:
        return
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create directory {directory} for the database: {exc.strerror or exc}"
        ) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _describe(exc: BaseException, url: URL) -> str:
    """One line saying what failed and where, never the password."""
    reason = str(getattr(exc, "orig", None) or exc)
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return f"database {url.render_as_string(hide_password=True)}: {reason}"


__all__ = ["DEFAULT_MAX_STEP_OUTPUT_BYTES", "RunNotFoundError", "Store", "default_url"]
