"""Suite-wide settings: PostgreSQL for the database tests.

The database tests use ORCH_TEST_PG_URL; when it is unset they use the server that
tests/setup.sh starts (role and database orch/orch_test on 127.0.0.1:5432) if it answers.
Under CI (CI=true) that server must answer: the PostgreSQL variants may not silently skip.
"""

from __future__ import annotations

import os
import socket

DEFAULT_PG_URL = "postgresql+psycopg://orch:orch@127.0.0.1:5432/orch_test"


def _postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pytest_configure(config) -> None:  # noqa: ANN001 - pytest hook
    if os.environ.get("ORCH_TEST_PG_URL"):
        return
    if _postgres_answers() or os.environ.get("CI") == "true":
        os.environ["ORCH_TEST_PG_URL"] = DEFAULT_PG_URL
