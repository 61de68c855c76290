"""Small artifacts kept in their row: artifacts.inline_bytes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a nullable column: existing rows keep pointing at their blobs, instant on any database
    op.add_column("artifacts", sa.Column("inline_bytes", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_column("inline_bytes")
