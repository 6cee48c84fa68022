"""Initial schema: runs, devices, device results, step outputs, observations, findings, network
findings.

Hand-checked against orchestrator/store/tables.py (tests/db/test_migrations.py compares them on
SQLite and PostgreSQL). Datetimes are `timestamp with time zone`, JSON columns portable `JSON`.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("fleet", sa.Text(), nullable=True),
        sa.Column("devices_total", sa.Integer(), nullable=False),
        sa.Column("devices_reached", sa.Integer(), nullable=False),
        sa.Column("devices_with_problems", sa.Integer(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("orch_version", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'interrupted', 'failed')",
            name=op.f("ck_runs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_fleet_status", "runs", ["fleet", "status"])

    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("fleet", sa.Text(), nullable=True),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("public_address", sa.Text(), nullable=True),
        sa.Column("first_seen_at", _utc(), nullable=False),
        sa.Column("last_seen_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("uuid", name=op.f("uq_devices_uuid")),
    )
    op.create_index("ix_devices_name", "devices", ["name"])

    op.create_table(
        "device_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("device_uuid", sa.Text(), nullable=False),
        sa.Column("device_name", sa.Text(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=False),
        sa.Column("route", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("output_truncated", sa.Boolean(), nullable=False),
        sa.Column("network_cause", sa.Text(), nullable=True),
        sa.Column("public_address", sa.Text(), nullable=True),
        sa.Column("gateway_ip", sa.Text(), nullable=True),
        sa.Column("gateway_mac", sa.Text(), nullable=True),
        sa.Column("subnet", sa.Text(), nullable=True),
        sa.Column("site", sa.Text(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_device_results_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_results")),
        sa.UniqueConstraint(
            "run_id", "device_uuid", name=op.f("uq_device_results_run_id_device_uuid")
        ),
    )
    op.create_index(
        "ix_device_results_device_uuid_run_id", "device_results", ["device_uuid", "run_id"]
    )

    op.create_table(
        "step_outputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("timed_out", sa.Boolean(), nullable=False),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("missing", sa.Boolean(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=True),
        _result_fk("step_outputs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_outputs")),
    )
    op.create_index("ix_step_outputs_result_id", "step_outputs", ["result_id"])

    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("probe", sa.Text(), nullable=False),
        _result_fk("observations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    op.create_index("ix_observations_result_id", "observations", ["result_id"])

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("remediation", sa.Text(), nullable=False),
        sa.Column("caused_by", sa.Text(), nullable=True),
        sa.Column("is_root_cause", sa.Boolean(), nullable=False),
        _result_fk("findings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
    )
    op.create_index("ix_findings_code", "findings", ["code"])
    op.create_index("ix_findings_category", "findings", ["category"])
    op.create_index("ix_findings_result_id", "findings", ["result_id"])

    op.create_table(
        "network_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("affected", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("remediation", sa.Text(), nullable=False),
        sa.Column("unreachable", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_network_findings_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_network_findings")),
    )
    op.create_index("ix_network_findings_run_id", "network_findings", ["run_id"])
    op.create_index(
        "ix_network_findings_kind_value_code", "network_findings", ["kind", "value", "code"]
    )


def _result_fk(table: str) -> sa.ForeignKeyConstraint:
    """The cascading foreign key from a per-device child table to its device result."""
    return sa.ForeignKeyConstraint(
        ["result_id"],
        ["device_results.id"],
        name=op.f(f"fk_{table}_result_id_device_results"),
        ondelete="CASCADE",
    )


def downgrade() -> None:
    for table in (
        "network_findings",
        "findings",
        "observations",
        "step_outputs",
        "device_results",
        "devices",
        "runs",
    ):
        op.drop_table(table)
