"""Rows handed to a database driver as plain tuples, without SQLAlchemy: shared by the prepared
INSERTs of `fast_insert` and the SQLite sweep writer of `sqlite_sweep`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

Processor = Callable[[Any], Any]

SQLITE_BOOLEAN: Processor = {True: 1, False: 0, None: None}.__getitem__
"""What SQLAlchemy sends SQLite for a boolean (1/0), by one C call. Python's sqlite3 module
binds a bool only after a failed adapter lookup (two exceptions raised and dropped), which costs
three times an int; psycopg takes Python bools as they are."""


def positional_rows(
    values: Sequence[dict[str, Any]],
    names: Sequence[str],
    processors: Sequence[Processor | None],
) -> list[tuple[Any, ...]]:
    """Each dict's values for ``names`` as a tuple, each through its processor (None: as it is).

    Values are picked by name in one C call per row and converted only in the columns that
    need it: most columns of most rows do not.
    """
    if len(names) == 1:  # itemgetter of one key gives the value, not a tuple
        name = names[0]
        picked = [(value[name],) for value in values]
    else:
        picked = list(map(itemgetter(*names), values))
    converted = [(i, p) for i, p in enumerate(processors) if p is not None]
    if not converted or not picked:
        return picked
    # column-wise: transpose, convert whole columns, transpose back (C loops, not a Python
    # loop per row and column)
    columns: list[Iterable[Any]] = list(zip(*picked, strict=True))
    for index, process in converted:
        columns[index] = map(process, columns[index])
    return list(zip(*columns, strict=True))
