"""Alembic environment for orch, used both programmatically and from the alembic CLI.

Programmatic use (`Store.upgrade`) builds the Config in code and hands over an open connection in
``config.attributes["connection"]``. From the CLI (`alembic -c FILE ...`) the URL comes from the
config file's ``sqlalchemy.url`` or, when that is empty, the ``ORCH_DB_URL`` environment variable.
SQLite migrations run in batch mode (it cannot ALTER most things in place).
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from orchestrator.store.db import normalise_url
from orchestrator.store.tables import metadata

config = context.config
target_metadata = metadata

if config.config_file_name is not None and config.file_config.has_section("loggers"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("ORCH_DB_URL")
    if not url:
        raise SystemExit("no database URL: set sqlalchemy.url or ORCH_DB_URL")
    return normalise_url(url).render_as_string(hide_password=False)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Emit the SQL instead of running it (`alembic upgrade head --sql`)."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through the given connection, or one opened from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=NullPool)
    try:
        with engine.connect() as owned:
            _run(owned)
            owned.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
