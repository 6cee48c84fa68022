"""``orch db``: schema migrations of the results database."""

from __future__ import annotations

import click

from orchestrator.cli.common import AppState, emit, handle_errors, parse_since


def register(group: click.Group) -> None:
    """Add the ``db`` group to the CLI."""

    @group.group()
    def db() -> None:
        """Manage the results database (SQLite file or PostgreSQL)."""

    @db.command()
    @click.option("--db", "url", help="Database URL (default: ORCH_DB_URL, config, then SQLite).")
    @click.pass_obj
    @handle_errors
    def upgrade(state: AppState, url: str | None) -> None:
        """Migrate the database schema to the latest revision."""
        from orchestrator.store import Store

        with Store.open(url or state.config.db_url, require_head=False) as store:
            revision = store.upgrade()
            emit(f"{store.url}: at revision {revision}")

    @db.command()
    @click.option("--db", "url", help="Database URL.")
    @click.pass_obj
    @handle_errors
    def current(state: AppState, url: str | None) -> None:
        """Show the schema revision the database is at, and the latest one."""
        from orchestrator.store import Store

        with Store.open(url or state.config.db_url, require_head=False, create=False) as store:
            revision, head = store.current_revision(), Store.head_revision()
            status = "up to date" if revision == head else "run `orch db upgrade`"
            emit(
                f"{store.url}: current {revision or 'none (empty database)'}, head {head}: {status}"
            )

    @db.command()
    @click.option(
        "--older-than",
        required=True,
        help="Prune runs started before this age or date (90d, 12w, or an ISO date).",
    )
    @click.option(
        "--keep-findings/--all",
        "keep_findings",
        default=True,
        help="Remove only raw step outputs and observations (default), or whole runs.",
    )
    @click.option("--db", "url", help="Database URL.")
    @click.pass_obj
    @handle_errors
    def prune(state: AppState, older_than: str, keep_findings: bool, url: str | None) -> None:
        """Remove old raw step outputs (or with --all whole runs) to bound the database size.

        By default runs, device results and findings stay, so history, diff and patterns keep
        working; runs still running are never touched.
        """
        from orchestrator.errors import UsageError
        from orchestrator.report.history_render import render_prune

        cutoff = parse_since(older_than)
        if cutoff is None:
            raise UsageError("--older-than needs an age or date, e.g. 90d")
        store = state.open_store(url, create=False)
        try:
            result = store.prune(cutoff, whole_runs=not keep_findings)
        finally:
            store.close()
        emit(render_prune(result, cutoff))
