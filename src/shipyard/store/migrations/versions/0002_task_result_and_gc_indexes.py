"""Tasks keep their result and live-log directory; indexes for DEAD runs and blob gc.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMNs (nullable, no default): no table rebuild on SQLite, instant on Postgres
    op.add_column("tasks", sa.Column("result", sa.JSON(none_as_null=True), nullable=True))
    op.add_column("tasks", sa.Column("log_dir", sa.Text(), nullable=True))
    op.create_index("ix_runs_status_heartbeat", "runs", ["status", "heartbeat_at"])
    op.create_index("ix_artifacts_key", "artifacts", ["key"])


def downgrade() -> None:
    op.drop_index("ix_artifacts_key", table_name="artifacts")
    op.drop_index("ix_runs_status_heartbeat", table_name="runs")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("log_dir")
        batch.drop_column("result")
