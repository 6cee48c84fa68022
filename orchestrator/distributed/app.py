"""The procrastinate ``App`` bound to orch's PostgreSQL results database.

Shard jobs live in procrastinate's own tables (``procrastinate_*``) in the same database as
the results, so one PostgreSQL serves both and a worker needs only the results URL. The job
schema is applied on first use by whichever process comes first (coordinator or worker), under
a PostgreSQL advisory lock so two processes starting together never apply it twice.
"""

from __future__ import annotations

from typing import Any

import procrastinate
import psycopg
from procrastinate.schema import SchemaManager
from psycopg.conninfo import make_conninfo

from orchestrator.errors import StoreError, UsageError
from orchestrator.store.db import normalise_url

SCHEMA_LOCK_KEY = 0x6F726368  # "orch": serialises schema creation between processes
_PROBE_TABLE = "procrastinate_jobs"


def postgres_conninfo(url: str) -> str:
    """A libpq connection string for an orch PostgreSQL URL; UsageError for anything else."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise UsageError(
            "distributed sweeps need a PostgreSQL database (--db or ORCH_DB_URL "
            "postgresql://USER:PASSWORD@HOST/DB); SQLite cannot be shared by workers"
        )
    query: dict[str, Any] = {
        key: value[-1] if isinstance(value, tuple) else value for key, value in parsed.query.items()
    }
    query.setdefault("connect_timeout", 10)
    return make_conninfo(
        host=parsed.host or "",
        port=parsed.port or "",
        user=parsed.username or "",
        password=parsed.password or "",
        dbname=parsed.database or "",
        **query,
    )


def make_app(url: str, *, pool_size: int = 4) -> procrastinate.App:
    """An (unopened) procrastinate App on the results database, with orch's tasks registered."""
    from orchestrator.distributed.tasks import register_tasks

    connector = procrastinate.PsycopgConnector(
        conninfo=postgres_conninfo(url), min_size=1, max_size=max(2, pool_size)
    )
    app = procrastinate.App(connector=connector)
    register_tasks(app)
    return app


async def ensure_schema(url: str) -> bool:
    """Create procrastinate's tables unless present; True when this call created them."""
    conninfo = postgres_conninfo(url)
    try:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
            try:
                cursor = await conn.execute("SELECT to_regclass(%s)", (_PROBE_TABLE,))
                row = await cursor.fetchone()
                if row is not None and row[0] is not None:
                    return False
                schema = SchemaManager.get_schema()
                async with conn.transaction():
                    await conn.execute(schema)  # type: ignore[arg-type]
                return True
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
    except psycopg.Error as exc:
        raise StoreError(_describe(exc, url)) from None


def _describe(exc: BaseException, url: str) -> str:
    """One line naming the database (password hidden) and the reason (password removed)."""
    parsed = normalise_url(url)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    return f"job queue on {parsed.render_as_string(hide_password=True)}: {reason}"
