"""Migrations: upgrade from empty, models and migrations agree, revision checks on open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from orchestrator.errors import StoreError
from orchestrator.store import Store
from orchestrator.store.schema import Base

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "runs",
    "devices",
    "device_results",
    "step_outputs",
    "findings",
    "network_findings",
}


def test_upgrade_from_empty_reaches_head(db_url: str) -> None:
    store = Store.open(db_url, require_head=False)
    try:
        if db_url.startswith("sqlite"):
            assert store.current_revision() == Store.head_revision()
        else:
            assert store.current_revision() is None
        assert store.upgrade() == Store.head_revision()
        assert store.current_revision() == Store.head_revision()
        assert store.upgrade() == Store.head_revision()
    finally:
        store.close()
    engine = create_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_migrated_schema_matches_models(store: Store, db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            inspector = inspect(connection)
            names = {ix["name"] for ix in inspector.get_indexes("findings")}
            assert {"ix_findings_code", "ix_findings_category", "ix_findings_result_id"} <= names
            fks = inspector.get_foreign_keys("device_results")
            assert fks[0]["name"] == "fk_device_results_run_id_runs"
    finally:
        engine.dispose()


def test_postgresql_not_migrated_refuses_to_open(pg_url: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store.open(pg_url)
    message = str(caught.value)
    assert message == (
        f"database at revision none (head is {Store.head_revision()}): run `orch db upgrade`"
    )
    assert "\n" not in message


def test_sqlite_is_migrated_on_open_at_default_location(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with Store.open() as store:
        assert store.current_revision() == Store.head_revision()
        run_id = store.start_run(source="demo", fleet=None, devices_total=0, options={})
    assert (tmp_path / "data" / "orch" / "orch.sqlite3").is_file()
    with Store.open() as again:
        assert again.latest_run_id() == run_id


def test_unknown_revision_is_a_clear_error(db_url: str) -> None:
    with Store.open(db_url, require_head=False) as store:
        store.upgrade()
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"revision ffff9999, unknown to this orch"):
        Store.open(db_url)


def test_alembic_command_line_upgrade_and_check(tmp_path) -> None:
    """`alembic -c FILE upgrade head` and `alembic check` work against the shipped scripts."""
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {REPO / 'migrations'}\nsqlalchemy.url = {url}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["upgrade", "head"], ["check"], ["current"]):
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(ini), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    assert Store.head_revision() in done.stdout
    with Store.open(url) as store:
        assert store.current_revision() == Store.head_revision()
