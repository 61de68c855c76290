"""Hosting: desired deployments and every deployed version.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# frozen copies of the types at this revision (never import schema.py from a migration)
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("service", sa.String(63), primary_key=True),
        sa.Column("current_version", sa.Integer(), nullable=True),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_table(
        "deployment_versions",
        sa.Column("service", sa.String(63), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("entry", sa.String(255), nullable=False),
        sa.Column("code_key", sa.String(64), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("env", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("pins", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deployment_versions")
    op.drop_table("deployments")
