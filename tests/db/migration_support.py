"""Building a database at an old revision for the data-migration tests: migrate with Alembic,
then fill it through plain SQL with one run of device results."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from alembic import command

from orchestrator.store.db import migrations_config, normalise_url

STARTED = datetime(2026, 5, 4, 3, 2, 1, tzinfo=timezone.utc)

_runs = sa.table(
    "runs",
    *(sa.column(name) for name in ("id", "status", "source", "fleet", "host", "orch_version")),
    *(sa.column(name) for name in ("devices_total", "devices_reached", "devices_with_problems")),
    *(sa.column(name) for name in ("pid",)),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("options", sa.JSON()),
)
_results = sa.table(
    "device_results",
    *(sa.column(name) for name in ("id", "run_id", "device_uuid", "device_name", "reachable")),
    sa.column("output_truncated"),
    sa.column("labels", sa.JSON()),
)


def migrate(url: str, revision: str, *, down: bool = False) -> None:
    """Upgrade (or downgrade) the database at ``url`` to ``revision`` with Alembic."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            config = migrations_config(normalise_url(url), connection)
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def uuid_of(result_id: int) -> str:
    """The device uuid `insert_run` gives result ``result_id``."""
    return f"{result_id:032x}"


def insert_run(connection: sa.Connection, results: int) -> None:
    """Run 1 with device results 1..``results`` (reachable, no children)."""
    connection.execute(
        sa.insert(_runs),
        {
            "id": 1,
            "status": "completed",
            "source": "inventory",
            "fleet": "DebugFleet",
            "host": "ci",
            "orch_version": "0.1",
            "devices_total": results,
            "devices_reached": results,
            "devices_with_problems": 0,
            "pid": 1,
            "started_at": STARTED,
            "options": {},
        },
    )
    connection.execute(
        sa.insert(_results),
        [
            {
                "id": result_id,
                "run_id": 1,
                "device_uuid": uuid_of(result_id),
                "device_name": f"device-{result_id}",
                "reachable": True,
                "output_truncated": False,
                "labels": [],
            }
            for result_id in range(1, results + 1)
        ],
    )
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT setval('device_results_id_seq', (SELECT max(id) FROM device_results))")
        )


def fill_run(
    engine: sa.Engine,
    results: int,
    children: sa.TableClause,
    rows_of: Callable[[int], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Run 1 with ``results`` device results and ``rows_of(result_id)`` rows of ``children``
    each, inserted shuffled (positions, not insertion order, must count); returns the rows in
    order."""
    rows = [row for result_id in range(1, results + 1) for row in rows_of(result_id)]
    with engine.begin() as connection:
        insert_run(connection, results)
        connection.execute(sa.insert(children), random.Random(2).sample(rows, len(rows)))
    return rows
