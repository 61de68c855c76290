"""A model version's input signature: model_versions.signature.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # JSON, nullable: versions registered before have no signature, and need no rewrite
    op.add_column(
        "model_versions", sa.Column("signature", sa.JSON(none_as_null=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("signature")
