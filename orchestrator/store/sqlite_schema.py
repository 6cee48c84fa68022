"""The SQLite schema at revision ``SCHEMA_REVISION``, as DDL: a sweep creates a new database file
from it without importing SQLAlchemy.

It is the schema `Store` builds from `orchestrator.store.tables` (``create_at_head``), which
tests/db/test_migrations.py proves equal to what the Alembic migrations build;
tests/db/test_sqlite_sweep.py proves this DDL builds the same tables, columns, constraints and
indexes. A new migration changes ``shipped_head()``, and until this file follows, new files are
left to `Store` (``SCHEMA_REVISION`` no longer matches) and that test fails.
"""

SCHEMA_REVISION = "0003"

SCHEMA_SQL = """\
CREATE TABLE runs (
    id INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    started_at DATETIME NOT NULL,
    finished_at DATETIME,
    source TEXT NOT NULL,
    fleet TEXT,
    devices_total INTEGER NOT NULL,
    devices_reached INTEGER NOT NULL,
    devices_with_problems INTEGER NOT NULL,
    options JSON NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    orch_version TEXT NOT NULL,
    CONSTRAINT pk_runs PRIMARY KEY (id),
    CONSTRAINT ck_runs_status CHECK (status IN ('running', 'completed', 'interrupted', 'failed'))
);

CREATE INDEX ix_runs_started_at ON runs (started_at);

CREATE INDEX ix_runs_fleet_status ON runs (fleet, status);

CREATE TABLE devices (
    id INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT NOT NULL,
    fleet TEXT,
    site TEXT,
    labels JSON NOT NULL,
    public_address TEXT,
    first_seen_at DATETIME NOT NULL,
    last_seen_at DATETIME NOT NULL,
    CONSTRAINT pk_devices PRIMARY KEY (id),
    CONSTRAINT uq_devices_uuid UNIQUE (uuid)
);

CREATE INDEX ix_devices_name ON devices (name);

CREATE TABLE device_results (
    id INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    device_uuid TEXT NOT NULL,
    device_name TEXT NOT NULL,
    reachable BOOLEAN NOT NULL,
    route TEXT,
    error TEXT,
    error_kind VARCHAR(32),
    started_at DATETIME,
    finished_at DATETIME,
    output_truncated BOOLEAN NOT NULL,
    network_cause TEXT,
    public_address TEXT,
    gateway_ip TEXT,
    gateway_mac TEXT,
    subnet TEXT,
    site TEXT,
    labels JSON NOT NULL,
    observations JSON,
    steps JSON,
    step_output TEXT,
    CONSTRAINT pk_device_results PRIMARY KEY (id),
    CONSTRAINT uq_device_results_run_id_device_uuid UNIQUE (run_id, device_uuid),
    CONSTRAINT fk_device_results_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE INDEX ix_device_results_device_uuid_run_id ON device_results (device_uuid, run_id);

CREATE TABLE network_findings (
    id INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    category TEXT NOT NULL,
    code TEXT NOT NULL,
    devices JSON NOT NULL,
    affected INTEGER NOT NULL,
    total INTEGER NOT NULL,
    summary TEXT NOT NULL,
    remediation TEXT NOT NULL,
    unreachable BOOLEAN NOT NULL,
    CONSTRAINT pk_network_findings PRIMARY KEY (id),
    CONSTRAINT fk_network_findings_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);

CREATE INDEX ix_network_findings_kind_value_code ON network_findings (kind, value, code);

CREATE INDEX ix_network_findings_run_id ON network_findings (run_id);

CREATE TABLE findings (
    id INTEGER NOT NULL,
    result_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    code TEXT NOT NULL,
    category TEXT NOT NULL,
    severity VARCHAR(16) NOT NULL,
    summary TEXT NOT NULL,
    evidence JSON NOT NULL,
    remediation TEXT NOT NULL,
    caused_by TEXT,
    is_root_cause BOOLEAN NOT NULL,
    CONSTRAINT pk_findings PRIMARY KEY (id),
    CONSTRAINT fk_findings_result_id_device_results FOREIGN KEY(result_id) REFERENCES device_results (id) ON DELETE CASCADE
);

CREATE INDEX ix_findings_category ON findings (category);

CREATE INDEX ix_findings_result_id ON findings (result_id);

CREATE INDEX ix_findings_code ON findings (code);

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
"""


def statements() -> list[str]:
    """The DDL statements, one by one (sqlite3 executes one per call)."""
    return [statement.strip() for statement in SCHEMA_SQL.split(";") if statement.strip()]
