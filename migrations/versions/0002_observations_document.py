"""Observations as one JSON document per device result instead of one row per observation.

`device_results.observations` holds ``{"key": [...], "value": [...], "evidence": [...],
"probe": [...]}``, four arrays in the order of the old `position` column (format:
orchestrator/store/tables.py); NULL when a result has none. The
upgrade moves existing rows into documents and drops the `observations` table; the downgrade
recreates the table from the documents. Both walk results in chunks of ids, so a large database
is never held in memory at once. Works on SQLite (>= 3.35 for DROP COLUMN) and PostgreSQL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from migrations.chunks import id_chunks

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FIELDS = ("key", "value", "evidence", "probe")
"""The document's arrays, one per old `observations` column, in the order selected below."""

_results = sa.table(
    "device_results",
    sa.column("id", sa.Integer()),
    sa.column("observations", sa.JSON(none_as_null=True)),
)
_observations = sa.table(
    "observations",
    sa.column("id", sa.Integer()),
    sa.column("result_id", sa.Integer()),
    sa.column("position", sa.Integer()),
    sa.column("key", sa.Text()),
    sa.column("value", sa.JSON()),
    sa.column("evidence", sa.JSON()),
    sa.column("probe", sa.Text()),
)


def upgrade() -> None:
    op.add_column(
        "device_results", sa.Column("observations", sa.JSON(none_as_null=True), nullable=True)
    )
    connection = op.get_bind()
    update = (
        sa.update(_results)
        .where(_results.c.id == sa.bindparam("result_id"))
        .values(observations=sa.bindparam("document", type_=sa.JSON(none_as_null=True)))
    )
    for first, last in id_chunks(connection, _observations.c.result_id):
        documents: dict[int, dict[str, list[Any]]] = {}
        rows = connection.execute(
            sa.select(
                _observations.c.result_id,
                _observations.c.key,
                _observations.c.value,
                _observations.c.evidence,
                _observations.c.probe,
            )
            .where(_observations.c.result_id.between(first, last))
            .order_by(_observations.c.result_id, _observations.c.position)
        )
        for result_id, *fields in rows:
            document = documents.get(result_id)
            if document is None:
                document = documents[result_id] = {name: [] for name in _FIELDS}
            for name, field in zip(_FIELDS, fields, strict=True):
                document[name].append(field)
        connection.execute(
            update,
            [{"result_id": rid, "document": doc} for rid, doc in documents.items()],
        )
    op.drop_index("ix_observations_result_id", table_name="observations")
    op.drop_table("observations")


def downgrade() -> None:
    op.create_table(
        "observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("probe", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["device_results.id"],
            name=op.f("fk_observations_result_id_device_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observations")),
    )
    op.create_index("ix_observations_result_id", "observations", ["result_id"])
    connection = op.get_bind()
    stored = _results.c.observations.is_not(None)
    for first, last in id_chunks(connection, _results.c.id, stored):
        documents = connection.execute(
            sa.select(_results.c.id, _results.c.observations)
            .where(_results.c.id.between(first, last), stored)
            .order_by(_results.c.id)
        )
        rows = [
            {
                "result_id": result_id,
                "position": position,
                **dict(zip(_FIELDS, fields, strict=True)),
            }
            for result_id, document in documents
            for position, fields in enumerate(
                zip(*(document[name] for name in _FIELDS), strict=True)
            )
        ]
        if rows:
            connection.execute(sa.insert(_observations), rows)
    op.drop_column("device_results", "observations")
