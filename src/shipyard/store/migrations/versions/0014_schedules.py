"""Schedules: schedules, schedule_versions, schedule_fires (one row per fire time or event,
unique), scheduler_lease; and runs.trigger (why a run runs).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# frozen copies of the types at this revision (never import schema.py from a migration)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def upgrade() -> None:
    # nullable: runs started before schedules existed were started by hand
    op.add_column("runs", sa.Column("trigger", _json(), nullable=True))
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("flow_name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("paused_at", _TIME, nullable=True),
        sa.Column("paused_by", sa.String(255), nullable=True),
        sa.Column("cursor", _TIME, nullable=False),
        sa.Column("deleted_at", _TIME, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_table(
        "schedule_versions",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("flow_name", sa.String(255), nullable=False),
        sa.Column("code_key", sa.String(128), nullable=False),
        sa.Column("module", sa.String(255), nullable=False),
        sa.Column("flow_file", sa.String(1024), nullable=False),
        sa.Column("parameters", _json(), nullable=False),
        sa.Column("cron", sa.String(255), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("triggers", _json(), nullable=False),
        sa.Column("policies", _json(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "schedule_fires",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("schedule", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scheduled_for", _TIME, nullable=True),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("due_at", _TIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("params", _json(), nullable=True),
        sa.Column("trigger", _json(), nullable=True),
        sa.Column("claim_token", sa.String(64), nullable=True),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claim_expires", _TIME, nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ux_schedule_fires_time", "schedule_fires", ["schedule", "scheduled_for"], unique=True
    )
    op.create_index(
        "ux_schedule_fires_event", "schedule_fires", ["schedule", "event_id"], unique=True
    )
    op.create_index("ix_schedule_fires_status_due", "schedule_fires", ["status", "due_at"])
    op.create_index(
        "ix_schedule_fires_schedule_created", "schedule_fires", ["schedule", "created_at"]
    )
    op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("acquired_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scheduler_lease")
    for index in (
        "ix_schedule_fires_schedule_created",
        "ix_schedule_fires_status_due",
        "ux_schedule_fires_event",
        "ux_schedule_fires_time",
    ):
        op.drop_index(index, table_name="schedule_fires")
    op.drop_table("schedule_fires")
    op.drop_table("schedule_versions")
    op.drop_table("schedules")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("trigger")
