"""Gateway accounting: usage per minute x route x key, budgets per key, spend per period.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# frozen copies of the types at this revision (never import schema.py from a migration)
_TIME = sa.DateTime(timezone=True)
_COUNT = sa.BigInteger()


def upgrade() -> None:
    # new tables only: existing rows are untouched, so this is instant on any database
    op.create_table(
        "gateway_usage",
        sa.Column("minute", _TIME, primary_key=True),
        sa.Column("route", sa.String(255), primary_key=True),
        sa.Column("key_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("key_label", sa.String(32), nullable=False),
        sa.Column("requests", _COUNT, nullable=False),
        sa.Column("errors", _COUNT, nullable=False),
        sa.Column("denied", _COUNT, nullable=False),
        sa.Column("streamed", _COUNT, nullable=False),
        sa.Column("tokens_in", _COUNT, nullable=False),
        sa.Column("tokens_out", _COUNT, nullable=False),
        sa.Column("cost", sa.Double(), nullable=False),
        sa.Column("latency_ms_sum", sa.Double(), nullable=False),
        sa.Column("latency_ms_max", sa.Double(), nullable=False),
        sa.Column("lat_100ms", _COUNT, nullable=False),
        sa.Column("lat_500ms", _COUNT, nullable=False),
        sa.Column("lat_2s", _COUNT, nullable=False),
        sa.Column("lat_10s", _COUNT, nullable=False),
        sa.Column("lat_inf", _COUNT, nullable=False),
    )
    op.create_index("ix_gateway_usage_key_minute", "gateway_usage", ["key_id", "minute"])
    op.create_table(
        "gateway_budgets",
        sa.Column("key_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("tokens", sa.BigInteger(), nullable=True),
        sa.Column("money", sa.Double(), nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "gateway_spend",
        sa.Column("key_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("period_start", _TIME, primary_key=True),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("money", sa.Double(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_spend")
    op.drop_table("gateway_budgets")
    op.drop_index("ix_gateway_usage_key_minute", table_name="gateway_usage")
    op.drop_table("gateway_usage")
