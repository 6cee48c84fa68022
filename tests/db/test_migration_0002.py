"""Migration 0002 moves observation rows into one JSON document per device result and back.

A database is built at revision 0001 with Alembic, filled through plain SQL with results and
observation rows (more results than one migration chunk holds), upgraded to head, read with the
store, then downgraded to 0001 and read again as rows. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from orchestrator.models import Observation
from orchestrator.store import Store
from tests.db.migration_support import fill_run, migrate

RESULTS = 1203
"""More device results than one chunk of the migration (500), and not a multiple of it."""

_observations = sa.table(
    "observations",
    *(sa.column(name) for name in ("result_id", "position", "key", "probe")),
    sa.column("value", sa.JSON()),
    sa.column("evidence", sa.JSON()),
)


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
    migrate(db_url, "0001")
    rows = fill_run(engine, RESULTS, _observations, _observation_rows)

    migrate(db_url, "head")

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

    migrate(db_url, "0001", down=True)

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

    migrate(db_url, "head")

    with Store.open(db_url) as store:
        again = {r.uuid: r.observations for r in store.load_reports(1)}
    assert again["c0ffee"] == new.observations
    assert again[f"{2:032x}"] == expected[f"{2:032x}"]
