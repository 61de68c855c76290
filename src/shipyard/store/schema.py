"""The metadata tables (SQLAlchemy Core), as they are at the newest migration.

The migrations in ``migrations/versions/`` build the same tables step by step and never
import this module (a migration is frozen in time); ``tests/store/test_migrations.py``
checks that a database upgraded to head matches these definitions exactly.

Times are stored as UTC (``UTCDateTime``) and come back timezone-aware. JSON columns use
the portable ``JSON`` type (TEXT on SQLite, ``json`` on PostgreSQL). Ids are integers from an
autoincrementing key that is never reused, even after gc deletes the newest rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

#: the Alembic revision these tables correspond to (checked against the scripts by a test)
HEAD_REVISION = "0002"

#: 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the (fast) rowid alias
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A ``datetime`` stored as UTC and read back timezone-aware (UTC), on every backend.

    SQLite keeps the naive UTC value as text; PostgreSQL keeps a ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _json() -> sa.JSON:
    # none_as_null: a Python None is stored as SQL NULL, not the JSON text 'null'
    return sa.JSON(none_as_null=True)


metadata = sa.MetaData()

flows = sa.Table(
    "flows",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", BigId, primary_key=True, autoincrement=True),
    sa.Column("flow_name", sa.String(255), sa.ForeignKey("flows.name"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    sa.Column("graph", _json(), nullable=False),
    sa.Column("code_key", sa.String(128), nullable=True),
    # no foreign key: gc may delete the origin of a resumed run
    sa.Column("origin_run_id", sa.BigInteger(), nullable=True),
    sa.Index("ix_runs_flow_created", "flow_name", "created_at"),
    sa.Index("ix_runs_created", "created_at"),
    sa.Index("ix_runs_status_heartbeat", "status", "heartbeat_at"),  # added in 0002: DEAD runs
    sqlite_autoincrement=True,
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", BigId, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.String(255), primary_key=True),
    sa.Index("ix_run_tags_tag", "tag", "run_id"),
)

run_params = sa.Table(
    "run_params",
    metadata,
    sa.Column("run_id", BigId, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("value", _json(), nullable=True),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("step_name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("foreach_stack", _json(), nullable=False),
    sa.Column("input_task_ids", _json(), nullable=False),
    # no foreign key: gc may delete the run a resume cloned from
    sa.Column("origin_task_id", sa.BigInteger(), nullable=True),
    sa.Column("result", _json(), nullable=True),  # added in 0002
    sa.Column("log_dir", sa.Text(), nullable=True),  # added in 0002
    sa.Index("ix_tasks_run_step", "run_id", "step_name"),
    sqlite_autoincrement=True,
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column(
        "task_id", BigId, sa.ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    sa.Column("error", _json(), nullable=True),
    sa.Column("stdout_key", sa.String(128), nullable=True),
    sa.Column("stderr_key", sa.String(128), nullable=True),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column(
        "task_id", BigId, sa.ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("encoding", sa.String(64), nullable=False),
    sa.Column("type_name", sa.String(255), nullable=False),
    sa.Column("preview", sa.Text(), nullable=False),
    sa.Column("offset", sa.BigInteger(), nullable=True),
    sa.Column("length", sa.BigInteger(), nullable=True),
    sa.Index("ix_artifacts_key", "key"),  # added in 0002: gc's referenced-keys scan
)

__all__ = [
    "HEAD_REVISION",
    "UTCDateTime",
    "artifacts",
    "attempts",
    "flows",
    "metadata",
    "run_params",
    "run_tags",
    "runs",
    "tasks",
]
