"""The project and branch of the run that made a model version (``@project``):
model_versions.project and model_versions.project_branch.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable (NULL: the producing flow had no @project), so existing versions need no rewrite
    op.add_column("model_versions", sa.Column("project", sa.String(128), nullable=True))
    op.add_column("model_versions", sa.Column("project_branch", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("project_branch")
        batch.drop_column("project")
