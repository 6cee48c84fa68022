"""Step outputs as one document per device result instead of one row per step.

`device_results.steps` holds the steps' fields column-wise (``name``, ``exit_code``,
``duration_s``, ``received_at`` and ``size``, one entry per step in the order of the old
`position` column; ``truncated``, ``timed_out``, ``skipped`` and ``missing`` as the positions of
the steps with that flag) and `device_results.step_output` their outputs end to end, each
``size`` characters long (format: orchestrator/store/tables.py); both NULL when a result has no
steps. The upgrade moves existing rows into documents and drops the
`step_outputs` table; the downgrade recreates the table from the documents. Both walk results in
chunks of ids, so a large database is never held in memory at once. Works on SQLite (>= 3.35 for
DROP COLUMN) and PostgreSQL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from migrations.chunks import id_chunks

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("name", "exit_code", "duration_s", "received_at")
"""Document arrays with one entry per step, from the old columns of the same names (``size``
comes from ``output``)."""
_FLAGS = ("truncated", "timed_out", "skipped", "missing")
"""Document arrays of the positions whose old boolean column of the same name was true."""

_results = sa.table(
    "device_results",
    sa.column("id", sa.Integer()),
    sa.column("steps", sa.JSON(none_as_null=True)),
    sa.column("step_output", sa.Text()),
)
_steps = sa.table(
    "step_outputs",
    sa.column("id", sa.Integer()),
    sa.column("result_id", sa.Integer()),
    sa.column("position", sa.Integer()),
    sa.column("name", sa.Text()),
    sa.column("exit_code", sa.Integer()),
    sa.column("truncated", sa.Boolean()),
    sa.column("timed_out", sa.Boolean()),
    sa.column("skipped", sa.Boolean()),
    sa.column("missing", sa.Boolean()),
    sa.column("duration_s", sa.Float()),
    sa.column("received_at", sa.Float()),
    sa.column("output", sa.Text()),
)


def upgrade() -> None:
    op.add_column("device_results", sa.Column("steps", sa.JSON(none_as_null=True), nullable=True))
    op.add_column("device_results", sa.Column("step_output", sa.Text(), nullable=True))
    connection = op.get_bind()
    update = (
        sa.update(_results)
        .where(_results.c.id == sa.bindparam("result_id"))
        .values(
            steps=sa.bindparam("document", type_=sa.JSON(none_as_null=True)),
            step_output=sa.bindparam("text", type_=sa.Text()),
        )
    )
    for first, last in id_chunks(connection, _steps.c.result_id):
        documents: dict[int, tuple[dict[str, list[Any]], list[str]]] = {}
        rows = connection.execute(
            sa.select(
                _steps.c.result_id,
                *(_steps.c[name] for name in (*_COLUMNS, *_FLAGS)),
                _steps.c.output,
            )
            .where(_steps.c.result_id.between(first, last))
            .order_by(_steps.c.result_id, _steps.c.position)
        )
        for result_id, *fields, output in rows:
            entry = documents.get(result_id)
            if entry is None:
                empty = {name: [] for name in (*_COLUMNS, "size", *_FLAGS)}
                entry = documents[result_id] = (empty, [])
            document, outputs = entry
            position = len(outputs)
            columns, flags = fields[: len(_COLUMNS)], fields[len(_COLUMNS) :]
            for name, field in zip(_COLUMNS, columns, strict=True):
                document[name].append(_json_safe(field))
            for name, set_ in zip(_FLAGS, flags, strict=True):
                if set_:
                    document[name].append(position)
            document["size"].append(len(output))
            outputs.append(output)
        connection.execute(
            update,
            [
                {"result_id": rid, "document": document, "text": "".join(outputs)}
                for rid, (document, outputs) in documents.items()
            ],
        )
    op.drop_index("ix_step_outputs_result_id", table_name="step_outputs")
    op.drop_table("step_outputs")


def downgrade() -> None:
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
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["device_results.id"],
            name=op.f("fk_step_outputs_result_id_device_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_outputs")),
    )
    op.create_index("ix_step_outputs_result_id", "step_outputs", ["result_id"])
    connection = op.get_bind()
    stored = _results.c.steps.is_not(None)
    for first, last in id_chunks(connection, _results.c.id, stored):
        documents = connection.execute(
            sa.select(_results.c.id, _results.c.steps, _results.c.step_output)
            .where(_results.c.id.between(first, last), stored)
            .order_by(_results.c.id)
        )
        rows = []
        for result_id, document, text in documents:
            flagged = {name: set(document[name]) for name in _FLAGS}
            end = 0
            columns = (document[name] for name in (*_COLUMNS, "size"))
            for position, (*fields, size) in enumerate(zip(*columns, strict=True)):
                start, end = end, end + size
                rows.append(
                    {
                        "result_id": result_id,
                        "position": position,
                        "output": (text or "")[start:end],
                        **dict(zip(_COLUMNS, fields, strict=True)),
                        **{name: position in flagged[name] for name in _FLAGS},
                    }
                )
        if rows:
            connection.execute(sa.insert(_steps), rows)
    op.drop_column("device_results", "step_output")
    op.drop_column("device_results", "steps")


def _json_safe(value: Any) -> Any:
    """A column value as JSON can hold it: NaN and infinities (a float column could) are null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
