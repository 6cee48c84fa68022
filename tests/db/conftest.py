"""Fixtures for the store tests: a fresh, empty database per test on SQLite and PostgreSQL.

PostgreSQL variants need ORCH_TEST_PG_URL (`export ORCH_TEST_PG_URL=$(bash .ci/postgres.sh | tail -1)`);
each test gets its own database, created through that URL and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from orchestrator.models import DeviceReport, Finding, NetworkKeys, Observation, StepOutput
from orchestrator.store import Store

PG_ENV = "ORCH_TEST_PG_URL"
PG_SKIP_REASON = (
    f"PostgreSQL tests need {PG_ENV} (export {PG_ENV}=$(bash .ci/postgres.sh | tail -1))"
)
T0 = datetime(2026, 3, 1, 2, 0, 0, 123456, tzinfo=timezone.utc)


def _fresh_pg_database() -> Iterator[str]:
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        pytest.skip(PG_SKIP_REASON)
    name = f"orch_t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin, name)
        admin.dispose()


def _drop_database(admin: Engine, name: str) -> None:
    """Drop a test database; plain DROP cancels autovacuum, FORCE ends sessions a test leaked."""
    with admin.connect() as connection:
        try:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        except OperationalError:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """URL of a fresh, empty database (no tables, no alembic revision)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'orch.sqlite3'}"
    else:
        yield from _fresh_pg_database()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database (PostgreSQL-only tests)."""
    yield from _fresh_pg_database()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on `db_url`'s database (for tests that write to it without the store)."""
    created = create_engine(db_url)
    try:
        yield created
    finally:
        created.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on a fresh database."""
    opened = Store.open(db_url, require_head=False)
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.close()


def rich_report(
    uuid_: str = "a1b2c3d4e5f60718293a4b5c6d7e8f90", name: str = "demo-clock-skew"
) -> DeviceReport:
    """A reached device with a cascade of findings, varied observations and steps."""
    return DeviceReport(
        uuid=uuid_,
        name=name,
        reachable=True,
        route="jump root@10.0.0.5:22222 via root@gw:22222",
        findings=(
            Finding(
                code="time.chrony_stopped",
                category="time",
                severity="critical",
                summary="chronyd is not running; the clock is 3.5 days behind",
                evidence=("chronyd.service: Deactivated successfully.", "offset -305355.4 s"),
                remediation="systemctl start chronyd; check UDP 123 to the NTP servers",
            ),
            Finding(
                code="vpn.tls_not_yet_valid",
                category="vpn",
                severity="error",
                summary="VPN TLS handshake fails: certificate is not yet valid",
                evidence=("VERIFY ERROR: depth=1, error=certificate is not yet valid",),
                remediation="fix the clock first",
                caused_by="time.chrony_stopped",
            ),
            Finding(
                code="supervisor.api_unreachable",
                category="supervisor",
                severity="warning",
                summary="supervisor cannot reach the API",
                caused_by="vpn.tls_not_yet_valid",
            ),
            Finding(code="dns.ok", category="dns", severity="info", summary="DNS resolves"),
        ),
        observations=(
            Observation("clock_offset_s", -305355.418, ("device 1700000000.1",), "time"),
            Observation("chrony", {"running": False, "sources": [], "stratum": None}, (), "time"),
            Observation("resolvers", ["10.0.0.1", "8.8.8.8"], ("nameserver 10.0.0.1",), "dns"),
            Observation("resolves_api", True, (), "dns"),
            Observation("curl_exit", 60, ("curl: (60) SSL certificate problem",), "api"),
            Observation("tls_issuer", "CN=RCSI-TLS-PROTECT", (), "dpi"),
            Observation("nothing", None, (), "misc"),
        ),
        steps=(
            StepOutput("date", "1700000000.123\n", 0, duration_s=0.01, received_at=1700000100.5),
            StepOutput("journal", "x" * 100, 0, truncated=True, duration_s=1.25),
            StepOutput("chronyc", "", 124, timed_out=True, duration_s=5.0),
            StepOutput("curl", "", None, skipped=True),
            StepOutput("ip-route", "", None, missing=True),
        ),
        network=NetworkKeys(
            public_address="203.0.113.7",
            gateway_ip="192.168.1.1",
            gateway_mac="aa:bb:cc:dd:ee:ff",
            subnet="192.168.1.0/24",
            site="depot-3",
            labels=("east", "pilot"),
        ),
        started_at=T0,
        finished_at=T0 + timedelta(seconds=7, microseconds=5),
        output_truncated=True,
        network_cause="network 203.0.113.7 blocks UDP 1194",
    )


def unreachable_report(uuid_: str = "ffff0000", name: str = "demo-offline") -> DeviceReport:
    """A device the transport could not reach."""
    return DeviceReport(
        uuid=uuid_,
        name=name,
        reachable=False,
        route="direct root@198.18.0.9:22222",
        error="connect timed out after 10 s",
        error_kind="timeout",
        findings=(
            Finding(
                code="access.timeout",
                category="access",
                severity="error",
                summary="could not connect",
            ),
        ),
        started_at=T0,
        finished_at=T0 + timedelta(seconds=10),
    )


@pytest.fixture
def make_report() -> Callable[..., DeviceReport]:
    """Factory for the rich reached-device report."""
    return rich_report


@pytest.fixture
def make_unreachable() -> Callable[..., DeviceReport]:
    """Factory for an unreachable-device report."""
    return unreachable_report
