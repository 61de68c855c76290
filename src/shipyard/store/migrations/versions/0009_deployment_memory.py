"""Each replica's memory limit of a deployed version: deployment_versions.memory.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # bytes; nullable, so existing versions (which have no limit) need no rewrite
    op.add_column("deployment_versions", sa.Column("memory", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment_versions") as batch:
        batch.drop_column("memory")
