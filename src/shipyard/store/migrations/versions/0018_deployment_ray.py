"""Where a deployed version's replicas run: deployment_versions.ray (``deploy --on ray``).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # {"min_replicas", "max_replicas", "target_ongoing", "cpus"}; NULL: the host's replicas
    op.add_column(
        "deployment_versions", sa.Column("ray", sa.JSON(none_as_null=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("deployment_versions") as batch:
        batch.drop_column("ray")
