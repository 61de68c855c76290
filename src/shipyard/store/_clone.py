"""Cloning succeeded tasks into a resumed run, many at once (see MetaStore.clone_tasks).

A resume clones every task it can reuse (often ~100), so this runs a fixed handful of
statements whatever the count: read the origins, their last succeeded attempts and their
artifacts; insert the new tasks (ids back via INSERT ... RETURNING), attempts and artifacts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shipyard.store._rows import chunks
from shipyard.store.errors import MetaStoreError, RecordNotFound
from shipyard.store.records import TaskStatus
from shipyard.store.schema import artifacts, attempts, tasks

_SUCCEEDED = TaskStatus.SUCCEEDED.value


def _select_in(conn: Connection, table: sa.Table, ids: list[int], *where: Any) -> list[Any]:
    rows: list[Any] = []
    for part in chunks(ids):
        rows.extend(conn.execute(sa.select(table).where(table.c.task_id.in_(part), *where)))
    return rows


def clone_tasks(
    conn: Connection,
    run_id: int,
    items: Sequence[tuple[int, Sequence[int]]],
    *,
    now: datetime,
    url: str,
) -> list[int]:
    """Insert the clones inside the caller's transaction; returns the new ids in order."""
    origin_ids = list(dict.fromkeys(origin for origin, _ in items))
    origins = {row.task_id: row for row in _select_in(conn, tasks, origin_ids)}
    for origin in origin_ids:
        if origin not in origins:
            raise RecordNotFound(f"cannot clone task {origin}: no such task in {url}")
        if origins[origin].status != _SUCCEEDED:
            raise MetaStoreError(
                f"cannot clone task {origin}: it is {origins[origin].status}, "
                "only succeeded tasks can be reused by a resume"
            )
    new_rows = [
        {
            "run_id": run_id,
            "step_name": origins[origin].step_name,
            "status": _SUCCEEDED,
            "created_at": now,
            "started_at": origins[origin].started_at,
            "finished_at": origins[origin].finished_at,
            "attempts": 1,
            "foreach_stack": origins[origin].foreach_stack,
            "input_task_ids": list(inputs),
            "origin_task_id": origin,
            "result": origins[origin].result,
            "log_dir": origins[origin].log_dir,
        }
        for origin, inputs in items
    ]
    inserted = conn.execute(
        tasks.insert().returning(tasks.c.task_id, sort_by_parameter_order=True), new_rows
    )
    new_ids = [int(task_id) for task_id in inserted.scalars()]
    clones = list(zip(new_ids, (origin for origin, _ in items), strict=True))

    last_attempt: dict[int, Any] = {}
    for row in _select_in(conn, attempts, origin_ids, attempts.c.status == _SUCCEEDED):
        if row.task_id not in last_attempt or row.attempt > last_attempt[row.task_id].attempt:
            last_attempt[row.task_id] = row
    attempt_rows = [
        {**last_attempt[origin]._asdict(), "task_id": new_id, "attempt": 0}
        for new_id, origin in clones
        if origin in last_attempt
    ]
    if attempt_rows:
        conn.execute(attempts.insert(), attempt_rows)

    by_origin: dict[int, list[dict[str, Any]]] = {}
    for row in _select_in(conn, artifacts, origin_ids):
        by_origin.setdefault(row.task_id, []).append(row._asdict())
    artifact_rows = [
        {**artifact, "task_id": new_id}
        for new_id, origin in clones
        for artifact in by_origin.get(origin, ())
    ]
    if artifact_rows:
        conn.execute(artifacts.insert(), artifact_rows)
    return new_ids


__all__ = ["clone_tasks"]
