"""Read queries the pages need beyond :class:`MetaStore`'s methods: one page of a step's
tasks, selected, ordered and limited in SQL so a 1,000-task foreach never loads whole; and
runs created since a time (``MetaStore.list_runs`` plus one condition)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shipyard.store.meta import MetaStore
from shipyard.store.schema import tasks


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
    with meta.reader.connect() as conn:
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


__all__ = ["TaskRow", "step_tasks"]
