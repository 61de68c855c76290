"""MetaStore behaviour, on SQLite and PostgreSQL (the ``meta`` / ``db_url`` fixtures)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipyard.store.meta import MetaStore, MetaStoreError, RecordNotFound
from shipyard.store.records import ArtifactRecord, RunStatus, TaskStatus


def _run(meta: MetaStore, flow: str = "MyFlow", **kwargs: object) -> int:
    values: dict[str, object] = {
        "user": "ann",
        "params": {},
        "tags": [],
        "graph": {},
        "code_key": None,
    }
    values.update(kwargs)
    return meta.create_run(flow, **values)  # type: ignore[arg-type]


def _artifact(name: str, key: str = "k" * 64, **kwargs: object) -> ArtifactRecord:
    values: dict[str, object] = {
        "size": 10,
        "encoding": "pickle5+zstd",
        "type_name": "builtins.int",
        "preview": "1",
    }
    values.update(kwargs)
    return ArtifactRecord(name=name, key=key, **values)  # type: ignore[arg-type]


def _succeeded_task(meta: MetaStore, run_id: int, step: str = "start", **kwargs: object) -> int:
    task_id = meta.create_task(run_id, step, foreach_stack=[], input_task_ids=[])
    meta.start_attempt(task_id, 0, pid=123)
    meta.finish_attempt(task_id, 0, status=TaskStatus.SUCCEEDED, **kwargs)  # type: ignore[arg-type]
    return task_id


def _assert_utc(value: datetime | None) -> None:
    assert value is not None and value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - value) < timedelta(minutes=1)


# --- runs ---------------------------------------------------------------------------------
def test_run_round_trip(meta: MetaStore) -> None:
    params = {"alpha": 0.5, "grid": [1, 2], "name": "x", "nested": {"a": None}}
    graph = {"steps": {"start": {"next": ["end"]}}}
    run_id = meta.create_run(
        "MyFlow", user="ann", params=params, tags=["b", "a", "b"], graph=graph, code_key="c1"
    )
    run = meta.get_run("MyFlow", run_id)
    assert run is not None
    assert (run.flow_name, run.run_id, run.status, run.user) == (
        "MyFlow",
        run_id,
        RunStatus.RUNNING,
        "ann",
    )
    assert run.params == params and run.graph == graph and run.code_key == "c1"
    assert run.tags == ("a", "b")
    assert run.origin_run_id is None and run.finished_at is None
    _assert_utc(run.created_at)
    _assert_utc(run.heartbeat_at)
    assert run.pathspec == f"MyFlow/{run_id}"
    assert meta.get_run_by_id(run_id) == run
    assert meta.get_run("OtherFlow", run_id) is None
    assert meta.get_run_by_id(run_id + 1000) is None

    resumed = _run(meta, origin_run_id=run_id)
    assert resumed != run_id
    assert meta.get_run_by_id(resumed).origin_run_id == run_id  # type: ignore[union-attr]


def test_heartbeat_and_finish_run(meta: MetaStore) -> None:
    run_id = _run(meta)
    before = meta.get_run_by_id(run_id).heartbeat_at  # type: ignore[union-attr]
    time.sleep(0.01)
    meta.heartbeat(run_id)
    after = meta.get_run_by_id(run_id).heartbeat_at  # type: ignore[union-attr]
    assert before is not None and after is not None and after > before

    meta.finish_run(run_id, RunStatus.FAILED)
    run = meta.get_run_by_id(run_id)
    assert run is not None and run.status is RunStatus.FAILED
    _assert_utc(run.finished_at)

    with pytest.raises(MetaStoreError, match="succeeded, failed or killed"):
        meta.finish_run(run_id, RunStatus.DEAD)
    with pytest.raises(RecordNotFound, match="no run with id 999999"):
        meta.heartbeat(999999)


def test_list_runs_order_filters_and_paging(meta: MetaStore) -> None:
    a1 = _run(meta, "A", tags=["prod", "x"])
    b1 = _run(meta, "B", tags=["prod"])
    a2 = _run(meta, "A", tags=["x"])
    a3 = _run(meta, "A", tags=["prod", "x", "y"])
    meta.finish_run(a2, RunStatus.SUCCEEDED)

    assert [r.run_id for r in meta.list_runs()] == [a3, a2, b1, a1]
    assert [r.run_id for r in meta.list_runs("A")] == [a3, a2, a1]
    assert [r.run_id for r in meta.list_runs("A", limit=1, offset=1)] == [a2]
    assert [r.run_id for r in meta.list_runs(limit=None, offset=3)] == [a1]
    assert [r.run_id for r in meta.list_runs(tags=["prod"])] == [a3, b1, a1]
    assert [r.run_id for r in meta.list_runs(tags=["prod", "x"])] == [a3, a1]
    assert [r.run_id for r in meta.list_runs("A", tags=["x", "y"])] == [a3]
    assert meta.list_runs(tags=["nope"]) == []
    assert [r.run_id for r in meta.list_runs(status=RunStatus.SUCCEEDED)] == [a2]
    assert [r.run_id for r in meta.list_runs("A", status=RunStatus.RUNNING)] == [a3, a1]
    assert meta.list_runs(status=RunStatus.DEAD) == []
    run_a2 = meta.get_run("A", a2)
    assert run_a2 is not None
    since = [r.run_id for r in meta.list_runs(since=run_a2.created_at)]
    assert since == [a3, a2]  # created at or after a2
    assert meta.flow_names() == ["A", "B"]


def test_add_and_remove_tags(meta: MetaStore) -> None:
    run_id = _run(meta, tags=["a"])
    meta.add_tags(run_id, ["c", "b", "a"])
    assert meta.get_run_by_id(run_id).tags == ("a", "b", "c")  # type: ignore[union-attr]
    meta.remove_tags(run_id, ["a", "missing"])
    assert meta.get_run_by_id(run_id).tags == ("b", "c")  # type: ignore[union-attr]
    assert [r.run_id for r in meta.list_runs(tags=["b"])] == [run_id]
    assert meta.list_runs(tags=["a"]) == []
    with pytest.raises(ValueError, match="bad tag ''"):
        meta.add_tags(run_id, [""])
    with pytest.raises(RecordNotFound):
        meta.add_tags(run_id + 1000, ["x"])


def test_ids_are_unique_and_never_reused(meta: MetaStore) -> None:
    first = _run(meta)
    task = meta.create_task(first, "start", foreach_stack=[], input_task_ids=[])
    meta.finish_run(first, RunStatus.SUCCEEDED)
    meta.delete_runs([first])
    second = _run(meta, "Other")
    assert second > first
    assert meta.create_task(second, "start", foreach_stack=[], input_task_ids=[]) > task


# --- tasks and attempts -------------------------------------------------------------------
def test_task_lifecycle_with_retry(meta: MetaStore) -> None:
    run_id = _run(meta)
    stack = [{"step": "start", "index": 2, "num_splits": 3}]
    task_id = meta.create_task(
        run_id, "train", foreach_stack=stack, input_task_ids=[7, 8], log_dir="/tmp/logs/1"
    )
    task = meta.get_task(task_id)
    assert task is not None
    assert (task.status, task.attempts, task.started_at, task.finished_at) == (
        TaskStatus.PENDING,
        0,
        None,
        None,
    )
    assert task.foreach_stack == tuple(stack) and task.input_task_ids == (7, 8)
    assert task.log_dir == "/tmp/logs/1" and task.result == {} and task.origin_task_id is None
    assert task.pathspec == f"MyFlow/{run_id}/train/{task_id}"
    _assert_utc(task.created_at)

    meta.start_attempt(task_id, 0, pid=41)
    task = meta.get_task(task_id)
    assert task is not None and task.status is TaskStatus.RUNNING and task.attempts == 1
    first_start = task.started_at
    _assert_utc(first_start)

    error = {"type": "ValueError", "message": "boom", "traceback": "Traceback..."}
    meta.finish_attempt(
        task_id,
        0,
        status=TaskStatus.FAILED,
        error=error,
        stderr_key="e0",
        artifacts=[_artifact("ignored")],
        final=False,
    )
    task = meta.get_task(task_id)
    assert task is not None and task.status is TaskStatus.RUNNING and task.finished_at is None

    meta.start_attempt(task_id, 1, pid=42)
    meta.finish_attempt(
        task_id,
        1,
        status=TaskStatus.SUCCEEDED,
        stdout_key="o1",
        stderr_key="e1",
        artifacts=[_artifact("b", key="kb"), _artifact("a", key="ka", offset=5, length=7)],
        result={"num_splits": 4},
    )
    task = meta.get_task(task_id)
    assert task is not None
    assert (task.status, task.attempts, task.result) == (TaskStatus.SUCCEEDED, 2, {"num_splits": 4})
    assert task.started_at == first_start
    _assert_utc(task.finished_at)

    attempts = meta.list_attempts(task_id)
    assert [(a.attempt, a.status, a.pid) for a in attempts] == [
        (0, TaskStatus.FAILED, 41),
        (1, TaskStatus.SUCCEEDED, 42),
    ]
    assert attempts[0].error == error and attempts[0].stderr_key == "e0"
    assert attempts[1].error is None
    assert (attempts[1].stdout_key, attempts[1].stderr_key) == ("o1", "e1")
    _assert_utc(attempts[1].finished_at)

    assert [a.name for a in meta.list_artifacts(task_id)] == ["a", "b"]
    assert meta.get_artifact(task_id, "a") == _artifact("a", key="ka", offset=5, length=7)
    assert meta.get_artifact(task_id, "ignored") is None
    assert meta.get_task(task_id + 1000) is None


def test_final_failure_records_no_artifacts(meta: MetaStore) -> None:
    run_id = _run(meta)
    task_id = meta.create_task(run_id, "start", foreach_stack=[], input_task_ids=[])
    meta.start_attempt(task_id, 0, pid=None)
    meta.finish_attempt(
        task_id, 0, status=TaskStatus.FAILED, error={"type": "E"}, artifacts=[_artifact("x")]
    )
    task = meta.get_task(task_id)
    assert task is not None and task.status is TaskStatus.FAILED
    assert meta.list_artifacts(task_id) == []


def test_finish_attempt_is_one_transaction(meta: MetaStore) -> None:
    run_id = _run(meta)
    task_id = meta.create_task(run_id, "start", foreach_stack=[], input_task_ids=[])
    meta.start_attempt(task_id, 0, pid=None)
    duplicate = [_artifact("same"), _artifact("same")]
    with pytest.raises(Exception):  # noqa: B017 - the backend's own IntegrityError
        meta.finish_attempt(task_id, 0, status=TaskStatus.SUCCEEDED, artifacts=duplicate)
    # nothing of it stuck: the attempt is still open and the task still running
    assert meta.list_attempts(task_id)[0].status is TaskStatus.RUNNING
    task = meta.get_task(task_id)
    assert task is not None and task.status is TaskStatus.RUNNING and task.finished_at is None
    assert meta.list_artifacts(task_id) == []


def test_a_transaction_groups_writes_and_a_failed_write_undoes_only_itself(
    meta: MetaStore,
) -> None:
    run_id = _run(meta)
    first = meta.create_task(run_id, "start", foreach_stack=[], input_task_ids=[])
    meta.start_attempt(first, 0, pid=None)

    def refuse(conn: object) -> None:
        raise ValueError("the registry refused")

    with meta.transaction():
        with pytest.raises(ValueError, match="refused"):
            meta.finish_attempt(
                first, 0, status=TaskStatus.SUCCEEDED, artifacts=[_artifact("x")], also=refuse
            )
        meta.finish_attempt(first, 0, status=TaskStatus.FAILED, error={"type": "E"})
        (second,) = meta.create_tasks(run_id, [("end", [], [first], None)])
        meta.start_attempt(second, 0, pid=None)
        # reads inside see the transaction's own writes
        assert meta.get_task(second) is not None
    task = meta.get_task(first)
    assert task is not None and task.status is TaskStatus.FAILED
    assert meta.list_artifacts(first) == []  # the refused write left nothing
    assert [a.status for a in meta.list_attempts(second)] == [TaskStatus.RUNNING]

    with pytest.raises(RuntimeError), meta.transaction():
        meta.finish_attempt(second, 0, status=TaskStatus.SUCCEEDED)
        meta.create_tasks(run_id, [("later", [], [second], None)])
        raise RuntimeError("the runtime fell over")
    assert [t.step_name for t in meta.list_tasks(run_id)] == ["start", "end"]
    assert [a.status for a in meta.list_attempts(second)] == [TaskStatus.RUNNING]


def test_attempt_misuse_is_refused(meta: MetaStore) -> None:
    run_id = _run(meta)
    task_id = meta.create_task(run_id, "start", foreach_stack=[], input_task_ids=[])
    with pytest.raises(RecordNotFound, match="call start_attempt first"):
        meta.finish_attempt(task_id, 0, status=TaskStatus.SUCCEEDED)
    meta.start_attempt(task_id, 0, pid=None)
    with pytest.raises(MetaStoreError, match="started already"):
        meta.start_attempt(task_id, 0, pid=None)
    with pytest.raises(MetaStoreError, match="not an end state"):
        meta.finish_attempt(task_id, 0, status=TaskStatus.RUNNING)
    with pytest.raises(RecordNotFound):
        meta.start_attempt(task_id + 1000, 0, pid=None)
    with pytest.raises(RecordNotFound):
        meta.create_task(run_id + 1000, "start", foreach_stack=[], input_task_ids=[])


def test_list_tasks_and_step_summaries(meta: MetaStore) -> None:
    run_id = _run(meta)
    other_run = _run(meta)
    start = _succeeded_task(meta, run_id, "start")
    trains = [
        meta.create_task(run_id, "train", foreach_stack=[], input_task_ids=[start])
        for _ in range(3)
    ]
    meta.create_task(other_run, "train", foreach_stack=[], input_task_ids=[])
    meta.start_attempt(trains[0], 0, pid=None)
    meta.finish_attempt(trains[0], 0, status=TaskStatus.SUCCEEDED)
    meta.start_attempt(trains[1], 0, pid=None)

    assert [t.task_id for t in meta.list_tasks(run_id)] == [start, *trains]
    assert [t.task_id for t in meta.list_tasks(run_id, "train")] == trains
    assert meta.list_tasks(run_id, "nope") == []

    summaries = meta.step_summaries(run_id)
    assert [s["step_name"] for s in summaries] == ["start", "train"]
    start_summary, train_summary = summaries
    assert start_summary["tasks"] == 1 and start_summary["counts"]["succeeded"] == 1
    assert train_summary["tasks"] == 3
    assert train_summary["counts"] == {
        "pending": 1,
        "running": 1,
        "succeeded": 1,
        "failed": 0,
        "killed": 0,
    }
    tasks = {t.task_id: t for t in meta.list_tasks(run_id)}
    assert train_summary["started_at"] == tasks[trains[0]].started_at
    assert train_summary["finished_at"] == tasks[trains[0]].finished_at
    _assert_utc(train_summary["started_at"])
    assert meta.step_summaries(run_id + 1000) == []


def test_kill_unfinished_tasks(meta: MetaStore) -> None:
    run_id = _run(meta)
    done = _succeeded_task(meta, run_id)
    running = meta.create_task(run_id, "a", foreach_stack=[], input_task_ids=[])
    meta.start_attempt(running, 0, pid=None)
    pending = meta.create_task(run_id, "b", foreach_stack=[], input_task_ids=[])
    other_run = _run(meta)
    other = meta.create_task(other_run, "a", foreach_stack=[], input_task_ids=[])

    meta.kill_unfinished_tasks(run_id)
    status = {t.task_id: t.status for t in meta.list_tasks(run_id)}
    assert status == {
        done: TaskStatus.SUCCEEDED,
        running: TaskStatus.KILLED,
        pending: TaskStatus.KILLED,
    }
    assert meta.list_attempts(running)[0].status is TaskStatus.KILLED
    assert meta.list_attempts(done)[0].status is TaskStatus.SUCCEEDED
    assert meta.get_task(other).status is TaskStatus.PENDING  # type: ignore[union-attr]


# --- resume: cloning ----------------------------------------------------------------------
def test_clone_task_copies_task_attempt_and_artifacts(meta: MetaStore) -> None:
    origin_run = _run(meta)
    stack = [{"step": "start", "index": 1, "num_splits": 2}]
    origin = meta.create_task(
        origin_run, "train", foreach_stack=stack, input_task_ids=[3], log_dir="/l"
    )
    meta.start_attempt(origin, 0, pid=1)
    meta.finish_attempt(origin, 0, status=TaskStatus.FAILED, stdout_key="o0", final=False)
    meta.start_attempt(origin, 1, pid=2)
    arts = [_artifact("model", key="km"), _artifact("score", key="ks")]
    meta.finish_attempt(
        origin,
        1,
        status=TaskStatus.SUCCEEDED,
        stdout_key="o1",
        stderr_key="e1",
        artifacts=arts,
        result={"r": 1},
    )
    new_run = _run(meta, origin_run_id=origin_run)
    clone = meta.clone_task(new_run, origin, input_task_ids=[99])

    source, copy = meta.get_task(origin), meta.get_task(clone)
    assert source is not None and copy is not None
    assert clone != origin
    assert (copy.run_id, copy.step_name, copy.status) == (new_run, "train", TaskStatus.SUCCEEDED)
    assert copy.origin_task_id == origin and copy.input_task_ids == (99,)
    assert copy.foreach_stack == tuple(stack) and copy.result == {"r": 1}
    assert copy.log_dir == "/l" and copy.attempts == 1
    assert (copy.started_at, copy.finished_at) == (source.started_at, source.finished_at)
    assert meta.list_artifacts(clone) == meta.list_artifacts(origin)
    [attempt] = meta.list_attempts(clone)
    assert (attempt.attempt, attempt.status, attempt.stdout_key, attempt.stderr_key) == (
        0,
        TaskStatus.SUCCEEDED,
        "o1",
        "e1",
    )
    # the origin is untouched
    assert [a.attempt for a in meta.list_attempts(origin)] == [0, 1]


def test_clone_tasks_many_in_order_and_all_or_nothing(meta: MetaStore) -> None:
    origin_run = _run(meta)
    origins = [
        _succeeded_task(meta, origin_run, f"s{i}", artifacts=[_artifact("x", key=f"k{i}")])
        for i in range(120)
    ]
    new_run = _run(meta)
    items = [(origin, [i]) for i, origin in enumerate(origins)]
    new_ids = meta.clone_tasks(new_run, items)
    assert len(new_ids) == 120 and len(set(new_ids)) == 120
    tasks = meta.list_tasks(new_run)
    assert [t.task_id for t in tasks] == new_ids
    assert [t.origin_task_id for t in tasks] == origins
    assert [t.input_task_ids for t in tasks] == [(i,) for i in range(120)]
    assert meta.get_artifact(new_ids[57], "x").key == "k57"  # type: ignore[union-attr]
    assert meta.clone_tasks(new_run, []) == []

    failed_run = _run(meta)
    failed = meta.create_task(failed_run, "bad", foreach_stack=[], input_task_ids=[])
    meta.start_attempt(failed, 0, pid=None)
    meta.finish_attempt(failed, 0, status=TaskStatus.FAILED)
    target = _run(meta)
    with pytest.raises(MetaStoreError, match=f"cannot clone task {failed}: it is failed"):
        meta.clone_tasks(target, [(origins[0], []), (failed, [])])
    with pytest.raises(RecordNotFound, match="no such task"):
        meta.clone_tasks(target, [(origins[0], []), (10**9, [])])
    assert meta.list_tasks(target) == []


# --- liveness -----------------------------------------------------------------------------
def test_dead_runs_are_reported_and_queryable(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HEARTBEAT_SECONDS", "0.5")
    with MetaStore.open(db_url) as meta:
        assert meta.dead_after == timedelta(seconds=2)  # max(3 * 0.5, 2)
        dying = _run(meta)
        finished = _run(meta)
        meta.finish_run(finished, RunStatus.SUCCEEDED)
        time.sleep(2.2)
        alive = _run(meta)

        assert meta.get_run_by_id(dying).status is RunStatus.DEAD  # type: ignore[union-attr]
        assert meta.get_run("MyFlow", alive).status is RunStatus.RUNNING  # type: ignore[union-attr]
        assert [r.run_id for r in meta.list_runs(status=RunStatus.DEAD)] == [dying]
        assert [r.run_id for r in meta.list_runs(status=RunStatus.RUNNING)] == [alive]
        statuses = {r.run_id: r.status for r in meta.list_runs()}
        assert statuses == {
            alive: RunStatus.RUNNING,
            finished: RunStatus.SUCCEEDED,
            dying: RunStatus.DEAD,
        }
        assert {r.run_id for r in meta.runs_for_gc(keep_last=0)} == {dying, finished}

        meta.heartbeat(dying)  # the runtime was only slow: it is alive again
        assert meta.get_run_by_id(dying).status is RunStatus.RUNNING  # type: ignore[union-attr]
        assert meta.list_runs(status=RunStatus.DEAD) == []


def test_dead_limit_follows_heartbeat_setting(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HEARTBEAT_SECONDS", "10")
    with MetaStore.open(db_url) as meta:
        assert meta.dead_after == timedelta(seconds=30)


# --- garbage collection -------------------------------------------------------------------
def test_runs_for_gc_older_than_and_keep_last(meta: MetaStore) -> None:
    a1, a2, b1 = _run(meta, "A"), _run(meta, "A"), _run(meta, "B")
    time.sleep(0.02)
    middle = datetime.now(UTC)
    time.sleep(0.02)
    a3, b2 = _run(meta, "A"), _run(meta, "B")
    live = _run(meta, "A")  # newest of A, still running with a fresh heartbeat
    old_live = a1  # running, alive, and old: never collected
    for run_id in (a2, b1, a3, b2):
        meta.finish_run(run_id, RunStatus.SUCCEEDED)

    def ids(**kwargs: object) -> set[int]:
        return {r.run_id for r in meta.runs_for_gc(**kwargs)}  # type: ignore[arg-type]

    assert ids() == set()
    assert ids(older_than=middle) == {a2, b1}
    assert ids(keep_last=1) == {a3, a2, b1}  # A keeps `live`, B keeps b2; a1 is alive
    assert ids(keep_last=2) == {a2}
    assert ids(keep_last=0) == {a2, a3, b1, b2}
    assert ids(older_than=middle, keep_last=1) == {a2, b1}
    assert ids(older_than=middle, keep_last=2) == {a2}  # B has only 2 runs: both kept
    assert ids(older_than=middle, keep_last=3) == set()  # a2 is A's 3rd newest
    assert old_live not in ids(keep_last=0) and live not in ids(keep_last=0)
    records = meta.runs_for_gc(keep_last=0)
    created = [r.created_at for r in records]
    assert created == sorted(created, reverse=True)
    with pytest.raises(ValueError, match="keep_last"):
        meta.runs_for_gc(keep_last=-1)
    with pytest.raises(ValueError, match="naive"):
        meta.runs_for_gc(older_than=datetime.now())


def test_delete_runs_removes_everything_under_them(meta: MetaStore) -> None:
    gone = _run(meta, "Gone", params={"p": 1}, tags=["t"], code_key="code-gone")
    kept = _run(meta, "Kept", params={"p": 2}, tags=["t"], code_key="code-kept")
    gone_task = _succeeded_task(
        meta, gone, artifacts=[_artifact("x", key="k-gone"), _artifact("y", key="k-shared")]
    )
    kept_task = _succeeded_task(
        meta, kept, stdout_key="out-kept", artifacts=[_artifact("y", key="k-shared")]
    )
    clone = meta.clone_task(kept, gone_task, input_task_ids=[])
    for run_id in (gone, kept):
        meta.finish_run(run_id, RunStatus.SUCCEEDED)

    meta.delete_runs([gone, gone])
    assert meta.get_run_by_id(gone) is None and meta.get_task(gone_task) is None
    assert meta.list_attempts(gone_task) == [] and meta.list_artifacts(gone_task) == []
    assert meta.list_tasks(gone) == [] and meta.list_runs("Gone") == []
    assert [r.run_id for r in meta.list_runs(tags=["t"])] == [kept]
    assert meta.flow_names() == ["Kept"]
    kept_run = meta.get_run_by_id(kept)
    assert kept_run is not None and kept_run.params == {"p": 2} and kept_run.tags == ("t",)
    assert [a.name for a in meta.list_artifacts(kept_task)] == ["y"]
    # the clone survives its origin and still points at the same blobs
    assert meta.get_task(clone).origin_task_id == gone_task  # type: ignore[union-attr]
    assert {a.key for a in meta.list_artifacts(clone)} == {"k-gone", "k-shared"}
    meta.delete_runs([])


def test_referenced_blob_keys(meta: MetaStore) -> None:
    assert meta.referenced_blob_keys() == set()
    run_id = _run(meta, code_key="code")
    _run(meta)  # no code snapshot: contributes nothing (no None in the set)
    task_id = meta.create_task(run_id, "start", foreach_stack=[], input_task_ids=[])
    meta.start_attempt(task_id, 0, pid=None)
    meta.finish_attempt(task_id, 0, status=TaskStatus.FAILED, stderr_key="err0", final=False)
    meta.start_attempt(task_id, 1, pid=None)
    meta.finish_attempt(
        task_id,
        1,
        status=TaskStatus.SUCCEEDED,
        stdout_key="out1",
        artifacts=[_artifact("a", key="blob-a"), _artifact("b", key="blob-b")],
    )
    assert meta.referenced_blob_keys() == {"code", "err0", "out1", "blob-a", "blob-b"}
    meta.finish_run(run_id, RunStatus.SUCCEEDED)
    meta.delete_runs([run_id])
    assert meta.referenced_blob_keys() == set()


# --- several processes --------------------------------------------------------------------
_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from shipyard.store.meta import MetaStore
    from shipyard.store.records import ArtifactRecord, TaskStatus

    url, run_id, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    meta = MetaStore.open(url)
    while not os.path.exists(go):
        time.sleep(0.005)
    for i in range(count):
        task_id = meta.create_task(run_id, "work", foreach_stack=[], input_task_ids=[])
        meta.start_attempt(task_id, 0, pid=os.getpid())
        artifact = ArtifactRecord("x", f"key-{os.getpid()}-{i}", 1, "pickle5", "int", "1")
        meta.finish_attempt(task_id, 0, status=TaskStatus.SUCCEEDED, artifacts=[artifact])
    meta.close()
    print("done", count)
    """
)


def test_concurrent_writers_never_see_locked_database(meta: MetaStore, tmp_path: Path) -> None:
    run_id = _run(meta)
    go = tmp_path / "go"
    count = 250
    writers = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-c", _WRITER, meta.url, str(run_id), str(count)]
            + [str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.3)  # let both open the store before they start writing together
    go.touch()
    for writer in writers:
        out, err = writer.communicate(timeout=90)
        assert writer.returncode == 0, err
        assert out.strip() == f"done {count}"
    tasks = meta.list_tasks(run_id)
    assert len(tasks) == 2 * count
    assert all(t.status is TaskStatus.SUCCEEDED for t in tasks)
    assert meta.step_summaries(run_id)[0]["counts"]["succeeded"] == 2 * count
    assert len(meta.referenced_blob_keys()) == 2 * count


def test_opening_an_up_to_date_store_does_not_import_alembic(meta: MetaStore) -> None:
    code = (
        "import sys; from shipyard.store.meta import MetaStore; "
        "MetaStore.open(sys.argv[1]).close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code, meta.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
