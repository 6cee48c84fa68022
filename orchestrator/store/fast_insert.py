"""Many-row INSERTs handed to the database driver as plain rows, prepared once per table.

SQLAlchemy's executemany builds and processes one parameter set per row through the compiler;
for the dozens of step outputs each device stored as rows (before schema revision 0003) and the
findings it still stores, that was most of the storage CPU of a sweep.
Here the INSERT is compiled once per (dialect, table, columns), each column's bind processor
(JSON serialisation, the UTC datetime conversion, the dialect's own conversions) is looked up
once, and the rows go to ``exec_driver_sql`` as tuples or dicts in the driver's parameter style,
in the caller's transaction. The SQL and conversions are SQLAlchemy's own, except that SQLite's
booleans become 1/0 and floats go as they are without a Python function per value, so what lands
in the database is what SQLAlchemy's own INSERT would have written.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Connection, Float, Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from orchestrator.store.rows import SQLITE_BOOLEAN, Processor, positional_rows


@dataclass(frozen=True)
class PreparedInsert:
    """One compiled INSERT with the conversion of each of its parameters."""

    sql: str
    names: tuple[str, ...]
    """Parameter names (the column keys), in the driver's order for positional styles."""
    processors: tuple[Processor | None, ...]
    positional: bool

    def rows(self, values: Sequence[dict[str, Any]]) -> list[Any]:
        """The driver parameters for ``values`` (one dict of column values per row)."""
        if not self.positional:
            pairs = tuple(zip(self.names, self.processors, strict=True))
            return [{n: v[n] if p is None else p(v[n]) for n, p in pairs} for v in values]
        return positional_rows(values, self.names, self.processors)


_PREPARED: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, tuple[str, ...]], PreparedInsert]]
_PREPARED = weakref.WeakKeyDictionary()
"""Per dialect object (it carries the engine's JSON serialiser), per table and columns."""


def prepare(table: Table, columns: Sequence[str], dialect: Dialect) -> PreparedInsert:
    """The prepared INSERT of ``columns`` into ``table`` for ``dialect`` (cached)."""
    cache = _PREPARED.setdefault(dialect, {})
    key = (table.name, tuple(columns))
    prepared = cache.get(key)
    if prepared is None:
        # inline: no RETURNING of generated keys (PostgreSQL adds it to a lone INSERT)
        statement = insert(table).inline()
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        binds = compiled.binds
        names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(columns)
        processors = tuple(_processor(binds[name].type, dialect) for name in names)
        prepared = PreparedInsert(
            sql=compiled.string,
            names=names,
            processors=processors,
            positional=compiled.positional,
        )
        cache[key] = prepared
    return prepared


def _processor(column_type: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """The bind conversion of one column: booleans as above, none for floats, which both
    drivers take as they are (an integer lands as a float in SQLite's REAL and PostgreSQL's
    double precision columns alike), SQLAlchemy's own for everything else."""
    if isinstance(column_type, Boolean):
        return SQLITE_BOOLEAN if dialect.name == "sqlite" else None
    if isinstance(column_type, Float) and not column_type.asdecimal:
        return None
    return column_type.dialect_impl(dialect).bind_processor(dialect)


def insert_rows(connection: Connection, table: Table, values: Sequence[dict[str, Any]]) -> None:
    """INSERT ``values`` (dicts with the same keys) into ``table`` in one executemany."""
    if not values:
        return
    prepared = prepare(table, list(values[0]), connection.dialect)
    connection.exec_driver_sql(prepared.sql, prepared.rows(values))
