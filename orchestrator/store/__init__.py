"""Storage of runs and device results (SQLite or PostgreSQL); the only SQLAlchemy user.

Everything here speaks `orchestrator.models` dataclasses; ORM objects never leave the package.
"""

from orchestrator.errors import StoreError
from orchestrator.store.db import (
    DEFAULT_MAX_STEP_OUTPUT_BYTES,
    RunNotFoundError,
    Store,
    default_url,
    normalise_url,
)
from orchestrator.store.tables import RUN_STATUSES

__all__ = [
    "DEFAULT_MAX_STEP_OUTPUT_BYTES",
    "RUN_STATUSES",
    "RunNotFoundError",
    "Store",
    "StoreError",
    "default_url",
    "normalise_url",
]
