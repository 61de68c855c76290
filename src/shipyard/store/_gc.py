"""The garbage-collection queries of the metadata store (see MetaStore.runs_for_gc)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shipyard.store._rows import chunks, not_live_clause
from shipyard.store.schema import (
    artifacts,
    attempts,
    deployment_versions,
    flows,
    model_versions,
    run_params,
    run_tags,
    runs,
    tasks,
)


def runs_for_gc_query(
    cutoff: datetime, *, older_than: datetime | None, keep_last: int | None
) -> sa.Select[Any]:
    """Runs that are finished or dead, and older than ``older_than`` (if given), and beyond
    the newest ``keep_last`` of their flow (if given; live runs count among the newest)."""
    if keep_last is not None and (isinstance(keep_last, bool) or keep_last < 0):
        raise ValueError(f"keep_last must be a whole number >= 0, got {keep_last!r}")
    if older_than is not None and older_than.tzinfo is None:
        raise ValueError(f"older_than={older_than!r} is naive: pass an aware (UTC) datetime")
    query = sa.select(runs).where(not_live_clause(cutoff))
    if older_than is not None:
        query = query.where(runs.c.created_at < older_than)
    if keep_last is not None:
        newest_first = (runs.c.created_at.desc(), runs.c.run_id.desc())
        rank = sa.func.row_number().over(partition_by=runs.c.flow_name, order_by=newest_first)
        ranked = sa.select(runs.c.run_id, rank.label("rank")).subquery()
        query = query.join(ranked, ranked.c.run_id == runs.c.run_id).where(
            ranked.c.rank > keep_last
        )
    return query.order_by(runs.c.created_at.desc(), runs.c.run_id.desc())


def delete_runs(conn: Connection, run_ids: list[int]) -> None:
    """Delete the runs, every row under them, and flows left without runs (explicitly, not
    through ON DELETE CASCADE, so it does not depend on SQLite's foreign_keys pragma)."""
    for part in chunks(run_ids):
        task_ids = sa.select(tasks.c.task_id).where(tasks.c.run_id.in_(part))
        conn.execute(artifacts.delete().where(artifacts.c.task_id.in_(task_ids)))
        conn.execute(attempts.delete().where(attempts.c.task_id.in_(task_ids)))
        conn.execute(tasks.delete().where(tasks.c.run_id.in_(part)))
        conn.execute(run_tags.delete().where(run_tags.c.run_id.in_(part)))
        conn.execute(run_params.delete().where(run_params.c.run_id.in_(part)))
        conn.execute(runs.delete().where(runs.c.run_id.in_(part)))
    has_runs = sa.select(runs.c.run_id).where(runs.c.flow_name == flows.c.name).exists()
    conn.execute(flows.delete().where(~has_runs))


def referenced_keys_query() -> sa.CompoundSelect[Any]:
    """Every blob key a row points at (may contain NULLs; the caller drops them)."""
    return sa.union(
        sa.select(artifacts.c.key),
        sa.select(attempts.c.stdout_key),
        sa.select(attempts.c.stderr_key),
        sa.select(runs.c.code_key),
        # a registered model outlives its run; a deployed service keeps its code snapshot
        sa.select(model_versions.c.key),
        sa.select(model_versions.c.code_key),
        sa.select(deployment_versions.c.code_key),
    )


__all__ = ["delete_runs", "referenced_keys_query", "runs_for_gc_query"]
