"""Events: events (published by ``shipyard event publish``, ``POST /api/v1/events``, the
registry and the cache; read by the scheduler) and scheduler_cursors (how far it has read).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# frozen copies of the types at this revision (never import schema.py from a migration)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # new tables only: nothing published before this revision
    op.create_table(
        "events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("published_by", sa.String(255), nullable=False),
        sa.Column("published_at", _TIME, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ux_events_idempotency", "events", ["idempotency_key"], unique=True)
    op.create_index("ix_events_published", "events", ["published_at"])
    op.create_table(
        "scheduler_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("at", _TIME, nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scheduler_cursors")
    op.drop_index("ix_events_published", table_name="events")
    op.drop_index("ux_events_idempotency", table_name="events")
    op.drop_table("events")
