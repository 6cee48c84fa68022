"""Schema revisions without loading Alembic: the version a database is at, and the newest one
shipped in the installed ``migrations`` package.

Every command opens the store and checks these two; reading them directly keeps Alembic (a few
hundred milliseconds to import) out of commands that do not migrate anything.
"""

from __future__ import annotations

import importlib.resources
import re
from functools import lru_cache

from sqlalchemy import Connection, inspect, text

_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def database_revision(connection: Connection) -> str | None:
    """The revision recorded in ``alembic_version`` (None for an empty database)."""
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
