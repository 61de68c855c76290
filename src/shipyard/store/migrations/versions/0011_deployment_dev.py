"""Versions deployed by the development loop (``shipyard serve FILE.py:Class``):
deployment_versions.dev.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # true: a plain `shipyard serve` does not bring it back; nullable (NULL: not dev), so
    # existing versions need no rewrite
    op.add_column("deployment_versions", sa.Column("dev", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment_versions") as batch:
        batch.drop_column("dev")
