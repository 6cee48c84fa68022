"""``orch db``: schema migrations of the results database."""

from __future__ import annotations

import click

from orchestrator.cli.common import AppState, emit, handle_errors


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

        with Store.open(url or state.config.db_url, require_head=False) as store:
            revision, head = store.current_revision(), Store.head_revision()
            status = "up to date" if revision == head else "run `orch db upgrade`"
            emit(
                f"{store.url}: current {revision or 'none (empty database)'}, head {head}: {status}"
            )
