"""Migration 0002 moves observation rows into one JSON document per device result and back.

A database is built at revision 0001 with Alembic, filled through plain SQL with results and
observation rows (more results than one migration chunk holds), upgraded to head, read with the
store, then downgraded to 0001 and read again as rows. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from orchestrator.models import Observation
from orchestrator.store import Store
from orchestrator.store.db import migrations_config, normalise_url

RESULTS = 1203
"""More device results than one chunk of the migration (500), and not a multiple of it."""

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
_observations = sa.table(
    "observations",
    *(sa.column(name) for name in ("result_id", "position", "key", "probe")),
    sa.column("value", sa.JSON()),
    sa.column("evidence", sa.JSON()),
)


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            config = migrations_config(normalise_url(url), connection)
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    created = sa.create_engine(db_url)
    try:
        yield created
    finally:
        created.dispose()


def _observation_rows(result_id: int) -> list[dict[str, Any]]:
    """A varied set of observation rows for one result (none for every seventh result)."""
    if result_id % 7 == 0:
        return []
    values: list[Any] = [
        result_id * 0.5,
        {"target": "api.balena-cloud.com:443", "outcome": "open", "ms": [12, 15]},
        ["192.168.2.1", "8.8.8.8"],
        None,
        "nan",
        result_id % 2 == 0,
    ]
    count = 1 + result_id % len(values)
    return [
        {
            "result_id": result_id,
            "position": position,
            "key": f"probe.fact_{position}",
            "value": values[position],
            "evidence": [f"line {position} of device {result_id}", "€ ünïcode"][: position % 3],
            "probe": ("time", "dns", "api")[position % 3],
        }
        for position in range(count)
    ]


def _fill_at_0001(engine: sa.Engine) -> list[dict[str, Any]]:
    """One run with RESULTS device results and their observation rows; returns the rows."""
    rows = [row for result_id in range(1, RESULTS + 1) for row in _observation_rows(result_id)]
    shuffled = random.Random(2).sample(rows, len(rows))  # positions, not insertion order, count
    with engine.begin() as connection:
        connection.execute(
            sa.insert(_runs),
            {
                "id": 1,
                "status": "completed",
                "source": "inventory",
                "fleet": "DebugFleet",
                "host": "ci",
                "orch_version": "0.1",
                "devices_total": RESULTS,
                "devices_reached": RESULTS,
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
                    "device_uuid": f"{result_id:032x}",
                    "device_name": f"device-{result_id}",
                    "reachable": True,
                    "output_truncated": False,
                    "labels": [],
                }
                for result_id in range(1, RESULTS + 1)
            ],
        )
        connection.execute(sa.insert(_observations), shuffled)
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text(
                    "SELECT setval('device_results_id_seq', (SELECT max(id) FROM device_results))"
                )
            )
    return rows


def _stored_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    columns = [_observations.c[name] for name in ("result_id", "position", "key", "value")]
    query = sa.select(*columns, _observations.c.evidence, _observations.c.probe).order_by(
        _observations.c.result_id, _observations.c.position
    )
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def _expected_observations(rows: list[dict[str, Any]]) -> dict[str, tuple[Observation, ...]]:
    by_device: dict[str, list[Observation]] = {}
    for row in sorted(rows, key=lambda r: (r["result_id"], r["position"])):
        by_device.setdefault(f"{row['result_id']:032x}", []).append(
            Observation(row["key"], row["value"], tuple(row["evidence"]), row["probe"])
        )
    return {uuid: tuple(observations) for uuid, observations in by_device.items()}


def test_upgrade_moves_rows_into_documents_and_downgrade_restores_them(
    db_url: str, engine: sa.Engine, make_report
) -> None:
    _migrate(db_url, "0001")
    rows = _fill_at_0001(engine)

    _migrate(db_url, "head")

    assert "observations" not in sa.inspect(engine).get_table_names()
    expected = _expected_observations(rows)
    with Store.open(db_url) as store:
        reports = store.load_reports(1)
        assert len(reports) == RESULTS
        assert {r.uuid: r.observations for r in reports} == {
            r.uuid: expected.get(r.uuid, ()) for r in reports
        }
        assert reports[1].observations[1].value["ms"] == [12, 15]
        assert reports[6].observations == ()
        new = dataclasses.replace(make_report(), uuid="c0ffee")
        store.save_reports(1, [new])

    _migrate(db_url, "0001", down=True)

    assert "observations" not in {
        c["name"] for c in sa.inspect(engine).get_columns("device_results")
    }
    restored = _stored_rows(engine)
    new_id = RESULTS + 1
    assert [r for r in restored if r["result_id"] != new_id] == rows
    assert [
        Observation(r["key"], r["value"], tuple(r["evidence"]), r["probe"])
        for r in restored
        if r["result_id"] == new_id
    ] == list(new.observations)

    _migrate(db_url, "head")

    with Store.open(db_url) as store:
        again = {r.uuid: r.observations for r in store.load_reports(1)}
    assert again["c0ffee"] == new.observations
    assert again[f"{2:032x}"] == expected[f"{2:032x}"]
