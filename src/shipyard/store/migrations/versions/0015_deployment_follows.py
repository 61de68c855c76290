"""Deployments that follow a model alias (``shipyard deploy ... --follow ranker@prod``):
deployment_follows.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# frozen copies of the types at this revision (never import schema.py from a migration)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # a new table only: existing deployments follow nothing
    op.create_table(
        "deployment_follows",
        sa.Column("service", sa.String(63), primary_key=True),
        sa.Column("spec", sa.String(160), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("paused_at", _TIME, nullable=True),
        sa.Column("paused_by", sa.String(255), nullable=True),
        sa.Column("paused_note", sa.Text(), nullable=True),
        sa.Column("target", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("claimed_at", _TIME, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deployment_follows")
