"""Walking a large table in chunks of ids, for data migrations that must not hold it in memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

CHUNK_RESULTS = 500
"""Device results moved per round trip."""


def id_chunks(
    connection: sa.Connection, column: sa.ColumnClause[Any], *conditions: Any
) -> Iterator[tuple[int, int]]:
    """(first, last) of successive runs of up to `CHUNK_RESULTS` distinct values of `column`."""
    after: int | None = None
    while True:
        query = sa.select(column).where(*conditions).distinct().order_by(column)
        if after is not None:
            query = query.where(column > after)
        ids = connection.scalars(query.limit(CHUNK_RESULTS)).all()
        if not ids:
            return
        yield ids[0], ids[-1]
        after = ids[-1]
