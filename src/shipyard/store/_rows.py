"""Row <-> record conversion and small query helpers for :mod:`shipyard.store.meta`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from shipyard.store.records import (
    ArtifactRecord,
    AttemptRecord,
    RunRecord,
    RunStatus,
    TaskRecord,
    TaskStatus,
)
from shipyard.store.records import clean_tags as clean_tags
from shipyard.store.schema import run_params, run_tags, runs, tasks

#: ids per IN (...) list: well under every backend's bound-parameter limit
CHUNK = 500

T = TypeVar("T")

#: the columns list_tasks/get_task select: every task column plus the run's flow name
TASK_COLUMNS = (*tasks.c, runs.c.flow_name)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_ignore(conn: Connection, table: sa.Table, values: dict[str, Any]) -> None:
    """INSERT the row unless its primary key exists already (no error, no race)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).values(values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).values(values).on_conflict_do_nothing())


def is_dead(status: str, heartbeat_at: datetime | None, cutoff: datetime) -> bool:
    return status == RunStatus.RUNNING.value and (heartbeat_at is None or heartbeat_at < cutoff)


def dead_clause(cutoff: datetime) -> sa.ColumnElement[bool]:
    """SQL for "RUNNING in the table but the heartbeat stopped" (reported as DEAD)."""
    return sa.and_(
        runs.c.status == RunStatus.RUNNING.value,
        sa.or_(runs.c.heartbeat_at.is_(None), runs.c.heartbeat_at < cutoff),
    )


def not_live_clause(cutoff: datetime) -> sa.ColumnElement[bool]:
    """SQL for "finished, or dead": anything but a RUNNING run with a fresh heartbeat."""
    return sa.or_(
        runs.c.status != RunStatus.RUNNING.value,
        runs.c.heartbeat_at.is_(None),
        runs.c.heartbeat_at < cutoff,
    )


def status_clause(status: RunStatus, cutoff: datetime) -> sa.ColumnElement[bool]:
    if status is RunStatus.DEAD:
        return dead_clause(cutoff)
    if status is RunStatus.RUNNING:
        return sa.and_(runs.c.status == status.value, runs.c.heartbeat_at >= cutoff)
    stored: sa.ColumnElement[bool] = runs.c.status == status.value
    return stored


def load_runs(conn: Connection, rows: Sequence[Row[Any]], cutoff: datetime) -> list[RunRecord]:
    """Records for ``rows`` of ``runs``, their tags and params fetched in two queries."""
    ids = [row.run_id for row in rows]
    tags: dict[int, list[str]] = {i: [] for i in ids}
    params: dict[int, dict[str, Any]] = {i: {} for i in ids}
    for part in chunks(ids):
        query = sa.select(run_tags).where(run_tags.c.run_id.in_(part)).order_by(run_tags.c.tag)
        for tag in conn.execute(query):
            tags[tag.run_id].append(tag.tag)
        for param in conn.execute(sa.select(run_params).where(run_params.c.run_id.in_(part))):
            params[param.run_id][param.name] = param.value
    return [
        RunRecord(
            flow_name=row.flow_name,
            run_id=row.run_id,
            status=(
                RunStatus.DEAD
                if is_dead(row.status, row.heartbeat_at, cutoff)
                else RunStatus(row.status)
            ),
            user=row.user,
            created_at=row.created_at,
            finished_at=row.finished_at,
            heartbeat_at=row.heartbeat_at,
            params=params[row.run_id],
            tags=tuple(tags[row.run_id]),
            graph=row.graph,
            code_key=row.code_key,
            origin_run_id=row.origin_run_id,
            trigger=row.trigger,
        )
        for row in rows
    ]


def task_record(row: Row[Any]) -> TaskRecord:
    return TaskRecord(
        flow_name=row.flow_name,
        run_id=row.run_id,
        step_name=row.step_name,
        task_id=row.task_id,
        status=TaskStatus(row.status),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        attempts=row.attempts,
        foreach_stack=tuple(row.foreach_stack),
        input_task_ids=tuple(row.input_task_ids),
        origin_task_id=row.origin_task_id,
        result=row.result or {},
        log_dir=row.log_dir,
    )


def attempt_record(row: Row[Any]) -> AttemptRecord:
    return AttemptRecord(
        task_id=row.task_id,
        attempt=row.attempt,
        status=TaskStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        pid=row.pid,
        error=row.error,
        stdout_key=row.stdout_key,
        stderr_key=row.stderr_key,
    )


def artifact_record(row: Row[Any]) -> ArtifactRecord:
    return ArtifactRecord(
        name=row.name,
        key=row.key,
        size=row.size,
        encoding=row.encoding,
        type_name=row.type_name,
        preview=row.preview,
        offset=row.offset,
        length=row.length,
        inline=row.inline_bytes,
    )


def artifact_row(task_id: int, artifact: ArtifactRecord) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "name": artifact.name,
        "key": artifact.key,
        "size": artifact.size,
        "encoding": artifact.encoding,
        "type_name": artifact.type_name,
        "preview": artifact.preview,
        "offset": artifact.offset,
        "length": artifact.length,
        "inline_bytes": artifact.inline,
    }


def step_summary(row: Row[Any]) -> dict[str, Any]:
    return {
        "step_name": row.step_name,
        "tasks": int(row.tasks),
        "counts": {s.value: int(getattr(row, s.value) or 0) for s in TaskStatus},
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "reused": int(row.reused or 0),
    }


def step_summary_query(run_id: int) -> sa.Select[Any]:
    per_status = [
        sa.func.sum(sa.case((tasks.c.status == s.value, 1), else_=0)).label(s.value)
        for s in TaskStatus
    ]
    ran_here = tasks.c.origin_task_id.is_(None)
    return (
        sa.select(
            tasks.c.step_name,
            sa.func.count().label("tasks"),
            *per_status,
            # a task a resume reused ran in the origin run: its times are not this run's
            sa.func.min(sa.case((ran_here, tasks.c.started_at))).label("started_at"),
            sa.func.max(sa.case((ran_here, tasks.c.finished_at))).label("finished_at"),
            sa.func.sum(sa.case((ran_here, 0), else_=1)).label("reused"),
        )
        .where(tasks.c.run_id == run_id)
        .group_by(tasks.c.step_name)
        .order_by(sa.func.min(tasks.c.task_id))
    )


__all__ = [
    "TASK_COLUMNS",
    "artifact_record",
    "artifact_row",
    "attempt_record",
    "chunks",
    "clean_tags",
    "dead_clause",
    "insert_ignore",
    "is_dead",
    "load_runs",
    "not_live_clause",
    "status_clause",
    "step_summary",
    "step_summary_query",
    "task_record",
]
