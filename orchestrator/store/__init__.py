"""Storage of runs and device results (SQLite or PostgreSQL); the only SQLAlchemy user.

Everything here speaks `orchestrator.models` dataclasses; ORM objects never leave the package.
Names are loaded on first use, so importing the package costs nothing: a sweep on a current
SQLite database (`sqlite_sweep`) never imports SQLAlchemy at all.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from orchestrator.errors import StoreError
from orchestrator.store.common import (
    DEFAULT_MAX_STEP_OUTPUT_BYTES,
    RUN_STATUSES,
    RunNotFoundError,
    default_url,
)

if TYPE_CHECKING:
    from orchestrator.store.db import Store, normalise_url

_FROM_DB = frozenset({"Store", "normalise_url"})


def __getattr__(name: str) -> Any:
    if name in _FROM_DB:
        return getattr(import_module("orchestrator.store.db"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MAX_STEP_OUTPUT_BYTES",
    "RUN_STATUSES",
    "RunNotFoundError",
    "Store",
    "StoreError",
    "default_url",
    "normalise_url",
]
