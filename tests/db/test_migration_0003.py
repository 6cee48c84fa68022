"""Migration 0003 moves step output rows into one document per device result and back.

A database is built at revision 0002 with Alembic, filled through plain SQL with results and
step rows (more results than one migration chunk holds; multi-byte text, empty outputs, NULL
exit codes and times, every flag), upgraded to head, read with the store, then downgraded to
0002 and read again as rows. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from orchestrator.models import StepOutput
from orchestrator.store import Store
from tests.db.migration_support import fill_run, migrate, uuid_of

RESULTS = 1103
"""More device results than one chunk of the migration (500), and not a multiple of it."""

_COLUMNS = (
    "result_id",
    "position",
    "name",
    "exit_code",
    "output",
    "truncated",
    "timed_out",
    "skipped",
    "missing",
    "duration_s",
    "received_at",
)
_steps = sa.table(
    "step_outputs",
    *(sa.column(name) for name in _COLUMNS[:5]),
    *(sa.column(name, sa.Boolean()) for name in _COLUMNS[5:9]),
    *(sa.column(name, sa.Float()) for name in _COLUMNS[9:]),
)
_OUTPUTS = ("", "Leap status     : Normal\n", "€ ünïcode ✓\n", "\U0001f600 emoji", "x" * 3000)


def _step_rows(result_id: int) -> list[dict[str, Any]]:
    """A varied set of step rows for one result (none for every fifth result)."""
    if result_id % 5 == 0:
        return []
    return [
        {
            "result_id": result_id,
            "position": position,
            "name": f"probe.step_{position}",
            "exit_code": None if position % 4 == 3 else position - 1,
            "output": _OUTPUTS[(result_id + position) % len(_OUTPUTS)],
            "truncated": position == 1,
            "timed_out": position == 2,
            "skipped": position == 3,
            "missing": position == 4,
            "duration_s": None if position == 4 else float(position) / 4,
            "received_at": None if position % 2 else 1_764_000_000.25 + result_id,
        }
        for position in range(1 + result_id % 7)
    ]


def _stored_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    query = sa.select(*(_steps.c[name] for name in _COLUMNS)).order_by(
        _steps.c.result_id, _steps.c.position
    )
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def _as_step(row: dict[str, Any]) -> StepOutput:
    return StepOutput(**{name: row[name] for name in _COLUMNS[2:]})


def test_upgrade_moves_rows_into_documents_and_downgrade_restores_them(
    db_url: str, engine: sa.Engine, make_report
) -> None:
    migrate(db_url, "0002")
    rows = fill_run(engine, RESULTS, _steps, _step_rows)

    migrate(db_url, "head")

    assert "step_outputs" not in sa.inspect(engine).get_table_names()
    expected: dict[str, list[StepOutput]] = {}
    for row in rows:
        expected.setdefault(uuid_of(row["result_id"]), []).append(_as_step(row))
    with Store.open(db_url) as store:
        reports = store.load_reports(1)
        assert len(reports) == RESULTS
        assert {r.uuid: r.steps for r in reports} == {
            r.uuid: tuple(expected.get(r.uuid, ())) for r in reports
        }
        assert reports[4].steps == ()
        assert {s.output for r in reports for s in r.steps} == set(_OUTPUTS)
        new = dataclasses.replace(make_report(), uuid="c0ffee")
        store.save_reports(1, [new])

    migrate(db_url, "0002", down=True)

    assert not {"steps", "step_output"} & {
        c["name"] for c in sa.inspect(engine).get_columns("device_results")
    }
    restored = _stored_rows(engine)
    new_id = RESULTS + 1
    assert [r for r in restored if r["result_id"] != new_id] == rows
    assert [_as_step(r) for r in restored if r["result_id"] == new_id] == list(new.steps)

    migrate(db_url, "head")

    with Store.open(db_url) as store:
        again = {r.uuid: r.steps for r in store.load_reports(1)}
    assert again["c0ffee"] == new.steps
    assert again[uuid_of(2)] == tuple(expected[uuid_of(2)])
