"""Initial schema: flows, runs, tags, parameters, tasks, attempts, artifacts.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# frozen copies of the types at this revision (never import schema.py from a migration)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", _ID, primary_key=True, autoincrement=True),
        sa.Column("flow_name", sa.String(255), sa.ForeignKey("flows.name"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("heartbeat_at", _TIME, nullable=True),
        sa.Column("graph", _json(), nullable=False),
        sa.Column("code_key", sa.String(128), nullable=True),
        sa.Column("origin_run_id", sa.BigInteger(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_runs_flow_created", "runs", ["flow_name", "created_at"])
    op.create_index("ix_runs_created", "runs", ["created_at"])
    op.create_table(
        "run_tags",
        sa.Column(
            "run_id", _ID, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("tag", sa.String(255), primary_key=True),
    )
    op.create_index("ix_run_tags_tag", "run_tags", ["tag", "run_id"])
    op.create_table(
        "run_params",
        sa.Column(
            "run_id", _ID, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("value", _json(), nullable=True),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", _ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", _ID, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
        sa.Column("step_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("foreach_stack", _json(), nullable=False),
        sa.Column("input_task_ids", _json(), nullable=False),
        sa.Column("origin_task_id", sa.BigInteger(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_tasks_run_step", "tasks", ["run_id", "step_name"])
    op.create_table(
        "attempts",
        sa.Column(
            "task_id", _ID, sa.ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("error", _json(), nullable=True),
        sa.Column("stdout_key", sa.String(128), nullable=True),
        sa.Column("stderr_key", sa.String(128), nullable=True),
    )
    op.create_table(
        "artifacts",
        sa.Column(
            "task_id", _ID, sa.ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("encoding", sa.String(64), nullable=False),
        sa.Column("type_name", sa.String(255), nullable=False),
        sa.Column("preview", sa.Text(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("length", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    for table in ("artifacts", "attempts", "tasks", "run_params", "run_tags", "runs", "flows"):
        op.drop_table(table)
