"""Schema revisions without loading Alembic: the version a database is at, the newest one
shipped in the installed ``migrations`` package, and creating an empty database at that one.
SQLAlchemy is imported only by the functions that take a connection: a sweep on a current
SQLite database reads the shipped head without it.

Every command opens the store and checks these; reading them directly keeps Alembic (a few
hundred milliseconds to import, more to run every migration) out of commands that do not
migrate an existing database.
"""

from __future__ import annotations

import importlib.resources
import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData, Table

_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def _version_table() -> Table:
    """Alembic's own bookkeeping table, declared as Alembic declares it."""
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

    return Table(
        "alembic_version",
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
    )


def create_at_head(connection: Connection, metadata: MetaData, head: str) -> None:
    """Create every table of ``metadata`` in an empty database and record ``head`` as its revision.

    The result is the database ``alembic upgrade head`` builds (tests/db/test_migrations.py
    compares the two table by table), made without importing Alembic or replaying history.
    """
    metadata.create_all(connection)
    version = _version_table()
    version.create(connection)
    connection.execute(version.insert().values(version_num=head))


def database_revision(connection: Connection) -> str | None:
    """The revision recorded in ``alembic_version`` (None for an empty database)."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):
        return None
    row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return row[0] if row else None


@lru_cache(maxsize=1)
def shipped_head() -> str | None:
    """The newest revision among the shipped migration scripts (the one nothing revises)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for entry in importlib.resources.files("migrations").joinpath("versions").iterdir():
        if not entry.name.endswith(".py") or entry.name.startswith("__"):
            continue
        fields = dict(_ASSIGNMENT.findall(entry.read_text(encoding="utf-8")))
        own = _QUOTED.findall(fields.get("revision", ""))
        if own:
            revisions.add(own[0])
            revised.update(_QUOTED.findall(fields.get("down_revision", "")))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None
