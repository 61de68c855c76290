"""The flow runtime's writes to a SQLite metadata file, with the standard library alone.

The recorder (``flow/recorder.py``) applies a run's rows with these instead of
:class:`~shipyard.store.meta.MetaStore`'s methods of the same names: importing SQLAlchemy
costs ~0.1 s of CPU, more than all the rest of a ten-step run. Each method writes exactly
the rows MetaStore's does (the same columns, the same stored text for times and JSON);
``tests/store/test_sqlite_writer.py`` runs one sequence of writes through both and compares
every row, so a change to a table or to MetaStore that is not made here fails there. Only
what the runtime writes is here; everything else goes through MetaStore.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.store.bootstrap import BUSY_TIMEOUT_MS, configure, immediate
from shipyard.store.errors import WriteRefused
from shipyard.store.records import ArtifactRecord, RunStatus, TaskStatus, clean_tags

_UNFINISHED = (TaskStatus.PENDING.value, TaskStatus.RUNNING.value)


def _time(value: datetime | None) -> str:
    """A time as SQLAlchemy stores a ``DateTime`` on SQLite: naive UTC, microseconds."""
    when = (value or datetime.now(UTC)).astimezone(UTC)
    return when.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _json(value: Any) -> str | None:
    """JSON as SQLAlchemy's ``JSON(none_as_null=True)`` stores it."""
    return None if value is None else json.dumps(value)


class SqliteWriter:
    """Writes to one SQLite metadata file whose schema is at head (see ``bootstrap.py``)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        configure(self._conn)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with immediate(self._conn):
            yield

    def close(self) -> None:
        self._conn.close()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    # -- runs -----------------------------------------------------------------------------
    def create_run(
        self,
        flow_name: str,
        *,
        user: str,
        params: dict[str, Any],
        tags: Iterable[str],
        graph: dict[str, Any],
        code_key: str | None,
        origin_run_id: int | None = None,
        run_id: int,
        at: datetime | None = None,
        trigger: dict[str, Any] | None = None,
    ) -> int:
        tag_list, now = clean_tags(tags), _time(at)
        self._run("INSERT OR IGNORE INTO flows (name, created_at) VALUES (?, ?)", (flow_name, now))
        self._run(
            "INSERT INTO runs (run_id, flow_name, status, user, created_at, heartbeat_at, graph,"
            " code_key, origin_run_id, trigger) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, flow_name, RunStatus.RUNNING.value, user, now, now, _json(graph), code_key,
             origin_run_id, None if trigger is None else _json(trigger)),
        )  # fmt: skip
        self._conn.executemany(
            "INSERT INTO run_tags (run_id, tag) VALUES (?, ?)", [(run_id, t) for t in tag_list]
        )
        self._conn.executemany(
            "INSERT INTO run_params (run_id, name, value) VALUES (?, ?, ?)",
            [(run_id, k, _json(v)) for k, v in params.items()],
        )
        return run_id

    def heartbeat(self, run_id: int) -> None:
        self._update_run(run_id, "heartbeat_at = ?", _time(None))

    def finish_run(self, run_id: int, status: RunStatus, *, at: datetime | None = None) -> None:
        now = _time(at)
        self._update_run(
            run_id,
            "status = ?, finished_at = ?, heartbeat_at = ?",
            RunStatus(status).value,
            now,
            now,
        )

    def _update_run(self, run_id: int, assignments: str, *values: Any) -> None:
        cursor = self._run(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*values, run_id))
        if cursor.rowcount == 0:
            raise WriteRefused(f"no run with id {run_id}")

    # -- tasks ----------------------------------------------------------------------------
    def create_tasks(
        self,
        run_id: int,
        items: Sequence[tuple[str, Sequence[dict[str, Any]], Sequence[int], str | None]],
        *,
        task_ids: Sequence[int],
        at: datetime | None = None,
    ) -> list[int]:
        if self._run("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise WriteRefused(f"no run with id {run_id}")
        now, pending = _time(at), TaskStatus.PENDING.value
        self._conn.executemany(
            "INSERT INTO tasks (task_id, run_id, step_name, status, created_at, attempts,"
            " foreach_stack, input_task_ids, log_dir) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
            [
                (task_id, run_id, step, pending, now, _json(list(stack)), _json(list(inputs)),
                 log_dir)
                for task_id, (step, stack, inputs, log_dir) in zip(task_ids, items, strict=True)
            ],
        )  # fmt: skip
        return list(task_ids)

    def start_attempt(
        self, task_id: int, attempt: int, *, pid: int | None, at: datetime | None = None
    ) -> None:
        now, running = _time(at), TaskStatus.RUNNING.value
        cursor = self._run(
            "UPDATE tasks SET status = ?, started_at = coalesce(started_at, ?), attempts = ?"
            " WHERE task_id = ?",
            (running, now, attempt + 1, task_id),
        )
        if cursor.rowcount == 0:
            raise WriteRefused(f"no task with id {task_id}")
        self._run(
            "INSERT INTO attempts (task_id, attempt, status, started_at, pid)"
            " VALUES (?, ?, ?, ?, ?)",
            (task_id, attempt, running, now, pid),
        )

    def record_pid(self, task_id: int, attempt: int, pid: int) -> None:
        self._run(
            "UPDATE attempts SET pid = ? WHERE task_id = ? AND attempt = ?",
            (pid, task_id, attempt),
        )

    def finish_attempt(
        self,
        task_id: int,
        attempt: int,
        *,
        status: TaskStatus,
        error: dict[str, Any] | None = None,
        stdout_key: str | None = None,
        stderr_key: str | None = None,
        artifacts: Sequence[ArtifactRecord] = (),
        result: dict[str, Any] | None = None,
        final: bool = True,
        at: datetime | None = None,
    ) -> None:
        status, now = TaskStatus(status), _time(at)
        cursor = self._run(
            "UPDATE attempts SET status = ?, finished_at = ?, error = ?, stdout_key = ?,"
            " stderr_key = ? WHERE task_id = ? AND attempt = ?",
            (status.value, now, _json(error), stdout_key, stderr_key, task_id, attempt),
        )
        if cursor.rowcount == 0:
            raise WriteRefused(f"task {task_id} has no attempt {attempt}")
        if not final:
            return
        self._run(
            "UPDATE tasks SET status = ?, finished_at = ?, result = ? WHERE task_id = ?",
            (status.value, now, _json(result or {}), task_id),
        )
        if status is TaskStatus.SUCCEEDED and artifacts:
            self._conn.executemany(
                'INSERT INTO artifacts (task_id, name, "key", size, encoding, type_name, preview,'
                ' "offset", length, inline_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                [
                    (task_id, a.name, a.key, a.size, a.encoding, a.type_name, a.preview,
                     a.offset, a.length, a.inline)
                    for a in artifacts
                ],
            )  # fmt: skip

    def kill_unfinished_tasks(self, run_id: int, *, at: datetime | None = None) -> None:
        now, killed = _time(at), TaskStatus.KILLED.value
        self._run(
            "UPDATE attempts SET status = ?, finished_at = ? WHERE status = ? AND task_id IN"
            " (SELECT task_id FROM tasks WHERE run_id = ? AND status IN (?, ?))",
            (killed, now, TaskStatus.RUNNING.value, run_id, *_UNFINISHED),
        )
        self._run(
            "UPDATE tasks SET status = ?, finished_at = ? WHERE run_id = ? AND status IN (?, ?)",
            (killed, now, run_id, *_UNFINISHED),
        )


__all__ = ["SqliteWriter", "WriteRefused"]
