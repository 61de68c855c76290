"""Read queries the pages need beyond :class:`MetaStore`'s methods: one page of a step's
tasks, selected, ordered and limited in SQL so a 1,000-task foreach never loads whole; and
runs created since a time (``MetaStore.list_runs`` plus one condition)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from shipyard.store import _rows
from shipyard.store._engine import READ_OPTION
from shipyard.store.meta import MetaStore
from shipyard.store.records import RunRecord, RunStatus
from shipyard.store.schema import run_tags, runs, tasks


@dataclass(frozen=True)
class TaskRow:
    """What the step page shows of one task."""

    task_id: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    index: int | None  # the innermost foreach index
    origin_task_id: int | None


def _index(stack: Any) -> int | None:
    if isinstance(stack, list) and stack and isinstance(stack[-1], dict):
        value = stack[-1].get("index")
        return int(value) if isinstance(value, int) else None
    return None


def step_tasks(
    meta: MetaStore, run_id: int, step_name: str, *, limit: int, offset: int
) -> tuple[list[TaskRow], int]:
    """One page of the step's tasks in creation order, and how many the step has."""
    where = sa.and_(tasks.c.run_id == run_id, tasks.c.step_name == step_name)
    query = (
        sa.select(
            tasks.c.task_id,
            tasks.c.status,
            tasks.c.started_at,
            tasks.c.finished_at,
            tasks.c.attempts,
            tasks.c.foreach_stack,
            tasks.c.origin_task_id,
        )
        .where(where)
        .order_by(tasks.c.task_id)
        .limit(limit)
        .offset(offset or None)
    )
    reader = meta.engine.execution_options(**{READ_OPTION: True})
    with reader.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).where(where)).scalar_one())
        rows = [
            TaskRow(
                task_id=r.task_id,
                status=r.status,
                started_at=r.started_at,
                finished_at=r.finished_at,
                attempts=r.attempts,
                index=_index(r.foreach_stack),
                origin_task_id=r.origin_task_id,
            )
            for r in conn.execute(query)
        ]
    return rows, total


def runs_since(
    meta: MetaStore,
    flow_name: str | None,
    *,
    since: datetime,
    tags: Sequence[str] = (),
    status: RunStatus | None = None,
    limit: int,
    offset: int = 0,
) -> list[RunRecord]:
    """:meth:`MetaStore.list_runs` for runs created at or after ``since``, newest first
    (the same query and records, with ``created_at >= since`` on the indexed column)."""
    cutoff = datetime.now(UTC) - meta.dead_after
    query = (
        sa.select(runs)
        .where(runs.c.created_at >= since)
        .order_by(runs.c.created_at.desc(), runs.c.run_id.desc())
    )
    if flow_name is not None:
        query = query.where(runs.c.flow_name == flow_name)
    for tag in dict.fromkeys(tags):
        has_tag = sa.select(run_tags.c.run_id).where(
            run_tags.c.run_id == runs.c.run_id, run_tags.c.tag == tag
        )
        query = query.where(has_tag.exists())
    if status is not None:
        query = query.where(_rows.status_clause(status, cutoff))
    query = query.limit(limit).offset(offset or None)
    reader = meta.engine.execution_options(**{READ_OPTION: True})
    with reader.connect() as conn:
        return _rows.load_runs(conn, conn.execute(query).all(), cutoff)


__all__ = ["TaskRow", "runs_since", "step_tasks"]
