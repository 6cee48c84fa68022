"""Helpers shared by the orch commands: state, error handling, parsing.

Exit codes: 0 healthy, 1 problems found, 2 usage or configuration error, 3 the run failed.
Heavy modules (asyncssh, SQLAlchemy, balena-sdk, alembic) are imported inside the commands
that use them, so ``orch --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from functools import wraps
from typing import Any

import click

from orchestrator.errors import OrchError, UsageError
from orchestrator.report.terminal import inert

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
FORMAT_CHOICES = click.Choice(["table", "json", "csv"])


class AppState:
    """Per-invocation state shared by commands (config path, debug flag)."""

    def __init__(self, config_path: str | None, debug: bool) -> None:
        self.config_path = config_path
        self.debug = debug
        self._config = None

    @property
    def config(self):  # noqa: ANN201 - returns orchestrator.config.Config
        """The loaded configuration (read on first use)."""
        if self._config is None:
            from orchestrator.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def open_store(self, url: str | None, *, create: bool = True):  # noqa: ANN201 - returns Store
        """Open the results database (``--db`` wins over config and ``ORCH_DB_URL``).

        Commands that only read stored runs pass ``create=False``: a SQLite file that does
        not exist is then a one-line error instead of a new empty database.
        """
        from orchestrator.store import Store

        store = Store.open(
            url or self.config.db_url,
            max_step_output_bytes=self.config.database["max_step_output_bytes"],
            create=create,
        )
        store.recover_orphans()
        return store

    def open_sweep_store(self, url: str | None):  # noqa: ANN201 - returns a SweepStore
        """The database a sweep writes to: as `open_store`, but a SQLite file already at the
        newest schema is written through sqlite3 alone (no SQLAlchemy import)."""
        from orchestrator.store.sqlite_sweep import open_sweep_store

        store = open_sweep_store(
            url or self.config.db_url,
            max_step_output_bytes=self.config.database["max_step_output_bytes"],
        )
        store.recover_orphans()
        return store


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn OrchError into one clear line on stderr and its exit code (traceback with --debug)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OrchError as exc:
            state = click.get_current_context().find_object(AppState)
            if state is not None and state.debug:
                raise
            click.echo(inert(f"orch: error: {exc}"), err=True)
            sys.exit(exc.exit_code)
        except (SystemExit, KeyboardInterrupt, click.exceptions.Exit, click.ClickException):
            raise
        except Exception as exc:
            state = click.get_current_context().find_object(AppState)
            if state is not None and state.debug:
                raise
            click.echo(
                f"orch: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
                err=True,
            )
            sys.exit(EXIT_FAILED)

    return wrapper


def parse_since(text: str | None) -> datetime | None:
    """``7d``, ``12h``, ``30m`` or an ISO date/time into an aware UTC datetime."""
    if not text:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes", "w": "weeks"}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(timezone.utc) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"cannot read time {text!r}: use e.g. 7d, 12h or 2026-11-01") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def emit(text: str) -> None:
    """Write a result to stdout (control characters shown as ``?``, see `inert`)."""
    click.echo(inert(text))


def emit_chunks(chunks: Iterable[str], flush_at: int = 1 << 16, *, escaped: bool = False) -> None:
    """Write a result given in pieces to stdout, in writes of about ``flush_at`` characters
    (control characters shown as ``?``, see `inert`; ``escaped``: the text is orch's JSON,
    which escapes every control character already, and is written as it is)."""
    safe = (lambda text: text) if escaped else inert
    pending: list[str] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= flush_at:
            click.echo(safe("".join(pending)), nl=False)
            pending, size = [], 0
    click.echo(safe("".join(pending)))


def dumps(data: Any) -> str:
    """Stable, indented JSON."""
    return json.dumps(data, indent=2, default=str)
