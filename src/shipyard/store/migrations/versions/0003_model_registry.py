"""The model registry: models, model versions, aliases, and the audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# frozen copies of the types at this revision (never import schema.py from a migration)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def upgrade() -> None:
    # new tables only: existing rows are untouched, so this is instant on any database
    op.create_table(
        "models",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("last_version", sa.Integer(), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(64), sa.ForeignKey("models.name"), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("flow_name", sa.String(255), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("step_name", sa.String(255), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("artifact_name", sa.String(255), nullable=True),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("length", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("encoding", sa.String(64), nullable=False),
        sa.Column("type_name", sa.String(255), nullable=False),
        sa.Column("preview", sa.Text(), nullable=False),
        sa.Column("code_key", sa.String(128), nullable=True),
        sa.Column("module", sa.String(255), nullable=True),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("tags", _json(), nullable=False),
        sa.Column("libraries", _json(), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )
    op.create_index("ix_model_versions_key", "model_versions", ["key"])
    op.create_index("ix_model_versions_run", "model_versions", ["run_id"])
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(64), sa.ForeignKey("models.name"), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            name="fk_model_aliases_version",
        ),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("model", sa.String(64), nullable=True),
        sa.Column("alias", sa.String(64), nullable=True),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("detail", _json(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_model_at", "audit_log", ["model", "at"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_model_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("model_aliases")
    op.drop_index("ix_model_versions_run", table_name="model_versions")
    op.drop_index("ix_model_versions_key", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_table("models")
