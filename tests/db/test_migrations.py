"""Migrations: upgrade from empty, models and migrations agree, revision checks on open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from orchestrator.errors import StoreError
from orchestrator.store import Store
from orchestrator.store.db import migrations_config
from orchestrator.store.schema import Base

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "runs",
    "devices",
    "device_results",
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


def _migrate_with_alembic(url: str) -> None:
    """Every shipped migration, run by Alembic on an empty database."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(migrations_config(engine.url, connection), "head")
    finally:
        engine.dispose()


def _schema(url: str) -> dict[str, dict[str, object]]:
    """Everything the inspector reports about every table, in comparable form."""
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        schema: dict[str, dict[str, object]] = {}
        for table in inspector.get_table_names():
            schema[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c["default"], c.get("autoincrement"))
                    for c in inspector.get_columns(table)
                ],
                "primary_key": inspector.get_pk_constraint(table),
                "foreign_keys": sorted(
                    inspector.get_foreign_keys(table), key=lambda fk: str(fk["name"])
                ),
                "indexes": sorted(inspector.get_indexes(table), key=lambda ix: str(ix["name"])),
                "unique": sorted(
                    inspector.get_unique_constraints(table), key=lambda uq: str(uq["name"])
                ),
                "checks": sorted(
                    (" ".join(ck["sqltext"].split()), ck["name"])
                    for ck in inspector.get_check_constraints(table)
                ),
            }
        return schema
    finally:
        engine.dispose()


def test_new_sqlite_file_gets_the_schema_the_migrations_build(tmp_path) -> None:
    """A new SQLite file is created from the models, not by replaying every migration; the
    result must be exactly what the migrations build, down to constraint names."""
    created = f"sqlite:///{tmp_path / 'created.sqlite3'}"
    migrated = f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    with Store.open(created) as store:
        assert store.current_revision() == Store.head_revision()
    assert "alembic" not in _modules_loaded_by_opening(tmp_path / "again.sqlite3")
    _migrate_with_alembic(migrated)
    created_schema, migrated_schema = _schema(created), _schema(migrated)
    assert set(created_schema) == set(migrated_schema) == TABLES | {"alembic_version"}
    for table, described in migrated_schema.items():
        assert created_schema[table] == described, table
    with Store.open(created) as store:  # and Alembic takes it from there
        assert store.upgrade() == Store.head_revision()


def _modules_loaded_by_opening(path: Path) -> set[str]:
    code = (
        "import sys; from orchestrator.store import Store; "
        f"Store.open('sqlite:///{path}').close(); print(' '.join(sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=True,
    )
    return {name.split(".")[0] for name in done.stdout.split()}


def test_migrated_schema_matches_models(db_url: str) -> None:
    _migrate_with_alembic(db_url)
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
