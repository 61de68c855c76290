"""Secrets of a deployed version, by reference: deployment_versions.secrets.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # name -> "env:VAR" / "file:PATH", never a value; nullable, so existing versions (which
    # have none) need no rewrite: instant on any database
    op.add_column(
        "deployment_versions", sa.Column("secrets", sa.JSON(none_as_null=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("deployment_versions") as batch:
        batch.drop_column("secrets")
