"""A cancel request on a fire record (``overlap="cancel-previous"`` on any host):
schedule_fires.cancel_requested_at.

The scheduler that dispatches a new fire time records it on the previous fire's row; the
launcher that owns that run (on whichever host) polls its row and stops the run.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable (NULL: nobody asked to stop the run), so existing rows need no rewrite
    op.add_column(
        "schedule_fires",
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("schedule_fires") as batch:
        batch.drop_column("cancel_requested_at")
