"""The metadata tables (SQLAlchemy Core), as they are at the newest migration.

The migrations in ``migrations/versions/`` build the same tables step by step and never
import this module (a migration is frozen in time); ``tests/store/test_migrations.py``
checks that a database upgraded to head matches these definitions exactly.

Times are stored as UTC (``UTCDateTime``) and come back timezone-aware. JSON columns use
the portable ``JSON`` type (TEXT on SQLite, ``json`` on PostgreSQL). Ids are integers from an
autoincrementing key that is never reused, even after gc deletes the newest rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

#: the Alembic revision these tables correspond to (checked against the scripts by a test)
HEAD_REVISION = "0018"

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
    # why the run runs (revision 0014; NULL: started by hand): {"type": "schedule" |
    # "backfill" | "event" | "flow" | "manual", "schedule", "scheduled_for", "event", ...}
    sa.Column("trigger", _json(), nullable=True),
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
    sa.Column("inline_bytes", sa.LargeBinary(), nullable=True),  # added in 0007
    sa.Index("ix_artifacts_key", "key"),  # added in 0002: gc's referenced-keys scan
)

# --- the model registry (added in 0003) ----------------------------------------------------
# Versions copy what loading needs (blob range, code snapshot key, module), so a model version
# outlives the run that produced it: no foreign keys to runs or tasks (gc may delete them).

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # the counter versions are taken from (row-locked while a version is added; never reused)
    sa.Column("last_version", sa.Integer(), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
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
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # the model's input columns (revision 0010; NULL: none recorded), registry/signature.py
    sa.Column("signature", _json(), nullable=True),
    # the producing run's @project and branch (revision 0013; NULL: no @project)
    sa.Column("project", sa.String(128), nullable=True),
    sa.Column("project_branch", sa.String(255), nullable=True),
    sa.Index("ix_model_versions_key", "key"),
    sa.Index("ix_model_versions_run", "run_id"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("name", sa.String(64), sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(255), nullable=False),
    sa.ForeignKeyConstraint(
        ["name", "version"],
        ["model_versions.name", "model_versions.version"],
        name="fk_model_aliases_version",
    ),
)

#: who did what, when: model registrations, alias moves, (later) deploys
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("user", sa.String(255), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("model", sa.String(64), nullable=True),
    sa.Column("alias", sa.String(64), nullable=True),
    sa.Column("from_version", sa.Integer(), nullable=True),
    sa.Column("to_version", sa.Integer(), nullable=True),
    sa.Column("detail", _json(), nullable=True),
    sa.Index("ix_audit_log_model_at", "model", "at"),
    sa.Index("ix_audit_log_at", "at"),
    sqlite_autoincrement=True,
)

__all__ = [
    "HEAD_REVISION",
    "UTCDateTime",
    "api_keys",
    "artifacts",
    "attempts",
    "audit_log",
    "events",
    "flows",
    "metadata",
    "model_aliases",
    "model_versions",
    "models",
    "run_params",
    "run_tags",
    "runs",
    "schedule_fires",
    "schedule_versions",
    "scheduler_cursors",
    "scheduler_lease",
    "schedules",
    "tasks",
]

# --- API keys (added in 0004) ---------------------------------------------------------------
# Only the SHA-256 of a key is stored; ``prefix`` is the short non-secret part of the key
# (``sy_<prefix>_<secret>``) that finds the row and names the key in lists.

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", BigId, primary_key=True, autoincrement=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("scopes", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Index("ix_api_keys_prefix", "prefix", unique=True),
    sqlite_autoincrement=True,
)


# --- hosting (revision 0005) ---------------------------------------------------------------
#: the desired state of each service: its current version and replica count
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("service", sa.String(63), primary_key=True),
    sa.Column("current_version", sa.Integer(), nullable=True),
    sa.Column("replicas", sa.Integer(), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: every version ever deployed: code snapshot, entry point, environment, secrets' references,
#: pinned models
deployment_versions = sa.Table(
    "deployment_versions",
    metadata,
    sa.Column("service", sa.String(63), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("entry", sa.String(255), nullable=False),
    sa.Column("code_key", sa.String(64), nullable=False),
    sa.Column("replicas", sa.Integer(), nullable=False),
    sa.Column("env", _json(), nullable=False),
    sa.Column("pins", _json(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    # name -> reference ("env:VAR" / "file:PATH"), never a value (revision 0008; NULL: none)
    sa.Column("secrets", _json(), nullable=True),
    # each replica's memory limit in bytes (revision 0009; NULL: none)
    sa.Column("memory", sa.BigInteger(), nullable=True),
    # deployed by the development loop, `shipyard serve FILE.py:Class`: a later plain
    # `shipyard serve` does not restore it (revision 0011; NULL: not dev)
    sa.Column("dev", sa.Boolean(), nullable=True),
    # deployed `--on ray`: {"min_replicas", "max_replicas", "target_ongoing", "cpus"}
    # (revision 0018; NULL: the host's own replicas)
    sa.Column("ray", _json(), nullable=True),
)

#: deployments that follow a model alias (``deploy --follow ranker@prod``, revision 0015): when
#: the alias moves, the host rolls the deployment to the version it points at. ``target`` is
#: the model version last acted on, ``outcome`` how that ended (``live``, ``failed``; NULL:
#: rolling since ``claimed_at``); ``paused_at`` set: a rollback paused following
deployment_follows = sa.Table(
    "deployment_follows",
    metadata,
    sa.Column("service", sa.String(63), primary_key=True),
    sa.Column("spec", sa.String(160), primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("paused_at", UTCDateTime(), nullable=True),
    sa.Column("paused_by", sa.String(255), nullable=True),
    sa.Column("paused_note", sa.Text(), nullable=True),
    sa.Column("target", sa.Integer(), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("claimed_at", UTCDateTime(), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


# --- gateway accounting (revision 0006) ----------------------------------------------------
# Usage is aggregated in memory and upserted in batches, one row per minute x route x key
# (key_id 0: a request without a valid key). Latency is a sum, a max and five non-cumulative
# bucket counts (<100 ms, <500 ms, <2 s, <10 s, longer). No foreign keys: keys are never
# deleted, and the usage writer must not fail on a key it cannot see.

#: requests, tokens, errors, cost and latency per minute x route x key
gateway_usage = sa.Table(
    "gateway_usage",
    metadata,
    sa.Column("minute", UTCDateTime(), primary_key=True),
    sa.Column("route", sa.String(255), primary_key=True),
    sa.Column("key_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("key_label", sa.String(32), nullable=False),
    sa.Column("requests", sa.BigInteger(), nullable=False),
    sa.Column("errors", sa.BigInteger(), nullable=False),
    sa.Column("denied", sa.BigInteger(), nullable=False),
    sa.Column("streamed", sa.BigInteger(), nullable=False),
    sa.Column("tokens_in", sa.BigInteger(), nullable=False),
    sa.Column("tokens_out", sa.BigInteger(), nullable=False),
    sa.Column("cost", sa.Double(), nullable=False),
    sa.Column("latency_ms_sum", sa.Double(), nullable=False),
    sa.Column("latency_ms_max", sa.Double(), nullable=False),
    sa.Column("lat_100ms", sa.BigInteger(), nullable=False),
    sa.Column("lat_500ms", sa.BigInteger(), nullable=False),
    sa.Column("lat_2s", sa.BigInteger(), nullable=False),
    sa.Column("lat_10s", sa.BigInteger(), nullable=False),
    sa.Column("lat_inf", sa.BigInteger(), nullable=False),
    sa.Index("ix_gateway_usage_key_minute", "key_id", "minute"),
)

#: a key's budget per period ("day" or "month", calendar UTC): tokens and/or money
gateway_budgets = sa.Table(
    "gateway_budgets",
    metadata,
    sa.Column("key_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("tokens", sa.BigInteger(), nullable=True),
    sa.Column("money", sa.Double(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(255), nullable=False),
)

#: running totals per key x period, written with the usage batches (budgets read them)
gateway_spend = sa.Table(
    "gateway_spend",
    metadata,
    sa.Column("key_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("period_start", UTCDateTime(), primary_key=True),
    sa.Column("tokens", sa.BigInteger(), nullable=False),
    sa.Column("money", sa.Double(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


# --- load tests (revision 0010) ---------------------------------------------------------
#: ``shipyard loadtest`` runs against a deployed service, kept with the version they hit:
#: the summary (summary.json) and the self-contained HTML report
loadtests = sa.Table(
    "loadtests",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("service", sa.String(63), nullable=False),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("summary", _json(), nullable=False),
    sa.Column("report", sa.Text(), nullable=True),
    sa.Index("ix_loadtests_service_created", "service", "created_at"),
    sqlite_autoincrement=True,
)


# --- schedules (revision 0014) ----------------------------------------------------------
# A schedule is a named, versioned record of a flow (code snapshot, parameters' defaults,
# triggers, policies); each fire time or event becomes exactly one schedule_fires row (the
# unique keys below), which ends as one run or one recorded skip with its reason.

#: one row per schedule name: its current version, pause state and cursor
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("flow_name", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("paused", sa.Boolean(), nullable=False),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("paused_at", UTCDateTime(), nullable=True),
    sa.Column("paused_by", sa.String(255), nullable=True),
    # fire times at or before the cursor have their record (or were before the schedule
    # existed, or fell in a pause)
    sa.Column("cursor", UTCDateTime(), nullable=False),
    sa.Column("deleted_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: every version of a schedule: what to run and when
schedule_versions = sa.Table(
    "schedule_versions",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("flow_name", sa.String(255), nullable=False),
    sa.Column("code_key", sa.String(128), nullable=False),
    sa.Column("module", sa.String(255), nullable=False),
    sa.Column("flow_file", sa.String(1024), nullable=False),  # inside the snapshot
    sa.Column("parameters", _json(), nullable=False),  # name -> default, at create time
    sa.Column("cron", sa.String(255), nullable=True),  # NULL: no @schedule (events only)
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("triggers", _json(), nullable=False),  # events and upstream flows
    sa.Column("policies", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
)

#: one row per fire time (or event, or manual trigger): a run, or a skip with its reason
schedule_fires = sa.Table(
    "schedule_fires",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("schedule", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # schedule/backfill/event/flow/manual
    sa.Column("scheduled_for", UTCDateTime(), nullable=True),  # the (nominal) fire time
    sa.Column("event_id", sa.String(255), nullable=True),
    sa.Column("due_at", UTCDateTime(), nullable=False),  # fire time + jitter
    # pending -> claimed -> started; or queued (waits), skipped, error (final)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("params", _json(), nullable=True),  # overrides of the version's defaults
    sa.Column("trigger", _json(), nullable=True),  # event payload, upstream run
    sa.Column("claim_token", sa.String(64), nullable=True),
    sa.Column("claimed_by", sa.String(255), nullable=True),
    sa.Column("claim_expires", UTCDateTime(), nullable=True),
    sa.Column("run_id", sa.BigInteger(), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("exit_code", sa.Integer(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    # overlap="cancel-previous" (revision 0017): the run's launcher, polling, stops the run
    sa.Column("cancel_requested_at", UTCDateTime(), nullable=True),
    sa.Index("ux_schedule_fires_time", "schedule", "scheduled_for", unique=True),
    sa.Index("ux_schedule_fires_event", "schedule", "event_id", unique=True),
    sa.Index("ix_schedule_fires_status_due", "status", "due_at"),
    sa.Index("ix_schedule_fires_schedule_created", "schedule", "created_at"),
    sqlite_autoincrement=True,
)

#: who ticks: one row per lease name, held until expires_at unless renewed
scheduler_lease = sa.Table(
    "scheduler_lease",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("acquired_at", UTCDateTime(), nullable=False),
)


# --- events (revision 0016) ---------------------------------------------------------------
#: every event published (``shipyard event publish``, ``POST /api/v1/events``, the registry's
#: ``model.registered`` / ``model.alias-moved``, the cache's ``cache.published``); the
#: scheduler reads them in id order and fires the schedules whose ``@trigger`` names them
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("payload", _json(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # cli, api, registry, cache
    sa.Column("published_by", sa.String(255), nullable=False),
    sa.Column("published_at", UTCDateTime(), nullable=False),
    # the publisher's idempotency id: the same id twice is one event
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Index("ux_events_idempotency", "idempotency_key", unique=True),
    sa.Index("ix_events_published", "published_at"),
    sqlite_autoincrement=True,
)

#: how far the scheduler has read the events and the finished runs (one row per stream)
scheduler_cursors = sa.Table(
    "scheduler_cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger(), nullable=True),  # events: the last id read
    sa.Column("at", UTCDateTime(), nullable=True),  # runs: finished at or before this
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


def sqlite_statements() -> list[str]:
    """The statements that create these tables (and ``alembic_version``) on SQLite, as
    ``metadata.create_all`` would; ``_schema_sqlite.py`` keeps them for the runtime's start
    without SQLAlchemy (``bootstrap.py``). Regenerate it after changing a table::

        python -m shipyard.store.schema
    """
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sqlite.dialect()
    version = sa.Table(
        "alembic_version",
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), primary_key=True),
    )
    statements = []
    for table in [*metadata.sorted_tables, version]:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    return statements


def sqlite_module() -> str:
    """The source of ``_schema_sqlite.py``."""
    body = "".join(f"    {json.dumps(s)},\n" for s in sqlite_statements())
    return (
        '"""Generated by ``python -m shipyard.store.schema`` from schema.py: do not edit.\n\n'
        "The SQLite statements that create the metadata tables at ``REVISION`` (see\n"
        'bootstrap.py); tests/store/test_bootstrap.py checks that they are current."""\n\n'
        f"REVISION = {json.dumps(HEAD_REVISION)}\n\n"
        f"STATEMENTS = (\n{body})\n"
    )


if __name__ == "__main__":
    from pathlib import Path

    Path(__file__).with_name("_schema_sqlite.py").write_text(sqlite_module())
