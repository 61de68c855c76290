"""Load tests kept with the deployed version they hit: loadtests.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# frozen copies of the types at this revision (never import schema.py from a migration)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # a new table only: existing rows are untouched
    op.create_table(
        "loadtests",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("summary", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("report", sa.Text(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_loadtests_service_created", "loadtests", ["service", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_loadtests_service_created", table_name="loadtests")
    op.drop_table("loadtests")
