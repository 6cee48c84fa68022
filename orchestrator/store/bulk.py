"""Bulk storage of device reports with SQLAlchemy Core: a few statements per batch, not per row.

`save_results` replaces the results of the batch's devices in the caller's transaction: one
DELETE (children go by the database's ON DELETE CASCADE), one multi-row INSERT of the results
that hands back their ids (RETURNING where the backend supports it with executemany, otherwise
one SELECT), then one executemany INSERT of the findings, handed to the driver as prepared rows
(`orchestrator.store.fast_insert`). Observations and step outputs ride on the result rows, as
documents (one JSON each, the outputs end to end in one text).
Values come from `orchestrator.store.convert`, which caps and scrubs what cannot be stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from orchestrator.models import DeviceReport
from orchestrator.store.convert import finding_values, result_values
from orchestrator.store.fast_insert import insert_rows
from orchestrator.store.tables import device_results, findings

_RESULTS = device_results


def save_results(
    connection: Connection, run_id: int, reports: Sequence[DeviceReport], max_step_bytes: int
) -> None:
    """Store `reports` (unique uuids) for `run_id`, replacing earlier results of those devices."""
    if not reports:
        return
    uuids = [report.uuid for report in reports]
    connection.execute(
        delete(_RESULTS).where(_RESULTS.c.run_id == run_id, _RESULTS.c.device_uuid.in_(uuids))
    )
    ids = _insert_results(
        connection,
        [result_values(run_id, r, max_step_bytes) for r in reports],
        run_id,
        uuids,
    )
    rows: list[dict[str, Any]] = []
    for report in reports:
        result_id = ids[report.uuid]
        for row in finding_values(report):
            row["result_id"] = result_id
            rows.append(row)
    insert_rows(connection, findings, rows)


def _insert_results(
    connection: Connection, rows: list[dict[str, Any]], run_id: int, uuids: list[str]
) -> dict[str, int]:
    """Insert result rows; their ids by device uuid."""
    uuid_column = _RESULTS.c.device_uuid
    if connection.dialect.insert_executemany_returning:
        returned = connection.execute(insert(_RESULTS).returning(_RESULTS.c.id, uuid_column), rows)
        return {uuid: result_id for result_id, uuid in returned}
    connection.execute(insert(_RESULTS), rows)
    selected = connection.execute(
        select(_RESULTS.c.id, uuid_column).where(
            _RESULTS.c.run_id == run_id, uuid_column.in_(uuids)
        )
    )
    return {uuid: result_id for result_id, uuid in selected}
