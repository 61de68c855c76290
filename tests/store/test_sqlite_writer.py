"""The recorder's SQLite writer writes exactly the rows MetaStore writes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shipyard.store.bootstrap import IdReserver
from shipyard.store.meta import MetaStore
from shipyard.store.records import ArtifactRecord, RunStatus, TaskStatus
from shipyard.store.sqlite_writer import SqliteWriter, WriteRefused

T0 = datetime(2026, 11, 22, 3, 4, 5, 678901, tzinfo=UTC)
INLINE = b"\x80\x05K)."
TABLES = {
    "flows": "name",
    "runs": "run_id",
    "run_tags": "run_id, tag",
    "run_params": "run_id, name",
    "tasks": "task_id",
    "attempts": "task_id, attempt",
    "artifacts": "task_id, name",
}


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _writes(store: Any) -> None:
    """One run's life: a retried task with artifacts, a task killed, the run failed."""
    store.create_run(
        "WriterFlow",
        user="ann",
        params={"alpha": 0.1, "name": "x", "nothing": None},
        tags=["b", "a", "b"],
        graph={"steps": ["start", "train"], "module": "writer_flow"},
        code_key="c" * 64,
        origin_run_id=3,
        run_id=7,
        at=_at(0),
    )
    stack = [{"step": "start", "index": 1, "num_splits": 2}]
    items = [("start", [], [], "/logs/start.0"), ("train", stack, [11], None)]
    store.create_tasks(7, items, task_ids=[11, 12], at=_at(1))
    store.start_attempt(11, 0, pid=None, at=_at(2))
    error = {"type": "ValueError", "message": "flaky", "traceback": "tb"}
    store.finish_attempt(11, 0, status=TaskStatus.FAILED, error=error, stdout_key="o" * 64,
                         final=False, at=_at(3))  # fmt: skip
    store.start_attempt(11, 1, pid=4321, at=_at(4))
    artifacts = [
        ArtifactRecord("small", "a" * 64, 5, "pickle5", "builtins.int", "41", inline=INLINE),
        ArtifactRecord("item", "b" * 64, 9, "pickle5", "builtins.str", "'x'", offset=3, length=9),
    ]
    store.finish_attempt(11, 1, status=TaskStatus.SUCCEEDED, artifacts=artifacts,
                         result={"foreach": None, "duration": 0.25}, stderr_key="e" * 64,
                         at=_at(5))  # fmt: skip
    store.start_attempt(12, 0, pid=None, at=_at(6))
    store.record_pid(12, 0, 5678)
    store.kill_unfinished_tasks(7, at=_at(7))
    store.finish_run(7, RunStatus.FAILED, at=_at(8))


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
            for table, key in TABLES.items()
        }


def _new_db(path: Path) -> str:
    url = f"sqlite:///{path}"
    reserver = IdReserver.open(url)
    assert reserver is not None
    reserver.close()
    return url


def test_the_writer_stores_what_metastore_stores(tmp_path: Path) -> None:
    by_meta, by_writer = tmp_path / "meta.db", tmp_path / "writer.db"
    with MetaStore.open(_new_db(by_meta)) as meta:
        _writes(meta)
    _new_db(by_writer)
    writer = SqliteWriter(by_writer)
    with writer.transaction():
        _writes(writer)
    writer.close()
    expected, written = _rows(by_meta), _rows(by_writer)
    assert all(expected[t] for t in TABLES)  # the sequence touched every table
    assert written == expected
    with MetaStore.open(f"sqlite:///{by_writer}") as meta:  # and it reads back as written
        run = meta.get_run("WriterFlow", 7)
        assert run is not None and run.status is RunStatus.FAILED and run.created_at == _at(0)
        assert [a.inline for a in meta.list_artifacts(11)] == [None, INLINE]


def test_the_writer_refuses_what_is_not_there(tmp_path: Path) -> None:
    _new_db(tmp_path / "meta.db")
    writer = SqliteWriter(tmp_path / "meta.db")
    with pytest.raises(WriteRefused, match="no run with id 5"):
        writer.create_tasks(5, [("start", [], [], None)], task_ids=[1])
    with pytest.raises(WriteRefused, match="no task with id 1"):
        writer.start_attempt(1, 0, pid=None)
    with pytest.raises(WriteRefused, match="no run with id 5"):
        writer.heartbeat(5)
    with pytest.raises(ValueError, match="bad tag"):
        writer.create_run("F", user="u", params={}, tags=[""], graph={}, code_key=None, run_id=1)
    writer.close()
