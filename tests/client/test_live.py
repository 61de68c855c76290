"""Reading runs while they are in progress: nothing is cached, live logs, DEAD runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from shipyard.client import Flow, Run, RunStatus, Task, TaskStatus, list_runs


def test_in_progress_task_reads_live_logs_then_the_stored_blob(fake: Any) -> None:
    run_id = fake.run()
    task_id = fake.task(run_id, "start", status=None, stdout="line 1\n", stderr="oops\n")
    run = Run(f"DemoFlow/{run_id}")
    task = Task(f"DemoFlow/{run_id}/start/{task_id}")
    assert run.status is RunStatus.RUNNING and not run.finished
    assert task.status is TaskStatus.RUNNING and not task.finished
    assert task.finished_at is None
    assert task.stdout == "line 1\n" and task.stderr == "oops\n"
    live_out = task.record.live_log(fake.home, 0, "stdout")
    live_err = task.record.live_log(fake.home, 0, "stderr")
    assert live_out.parent.name == str(run_id)  # one directory per run
    with live_out.open("a") as out:
        out.write("line 2\n")
    assert task.stdout == "line 1\nline 2\n"  # read again, not cached

    # the runtime ends the attempt: upload, record the keys, delete the files
    out_key = fake.put_bytes(b"line 1\nline 2\n")
    fake.meta.finish_attempt(
        task_id,
        0,
        status=TaskStatus.SUCCEEDED,
        stdout_key=out_key,
        artifacts=[fake.artifact("x", 41)],
    )
    live_out.unlink()
    live_err.unlink()
    assert task.status is TaskStatus.SUCCEEDED  # same object, fresh status
    assert task.stdout == "line 1\nline 2\n"
    assert task.stderr == ""
    assert task.data.x == 41
    fake.finish(run_id)
    assert run.status is RunStatus.SUCCEEDED and run.finished_at is not None


def test_log_file_removed_between_reads_falls_back_to_the_blob(fake: Any) -> None:
    run_id = fake.run()
    task_id = fake.task(run_id, "start", status=None, stdout="partial")
    task = Task(f"DemoFlow/{run_id}/start/{task_id}")
    live_out = task.record.live_log(fake.home, 0, "stdout")
    fake.meta.finish_attempt(
        task_id, 0, status=TaskStatus.SUCCEEDED, stdout_key=fake.put_bytes(b"complete\n")
    )
    live_out.unlink()
    assert task.stdout == "complete\n"


def test_task_without_logs_reads_empty(fake: Any) -> None:
    run_id = fake.run()
    task_id = fake.meta.create_task(run_id, "start", foreach_stack=[], input_task_ids=[])
    task = Task(f"DemoFlow/{run_id}/start/{task_id}")
    assert task.status is TaskStatus.PENDING
    assert task.stdout == "" and task.attempts == [] and task.exception is None
    assert task.started_at is None


@pytest.fixture
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HEARTBEAT_SECONDS", "0.5")


def test_run_whose_runtime_stopped_heartbeating_is_dead(fast_heartbeat: None, fake: Any) -> None:
    run_id = fake.run()
    fake.task(run_id, "start", status=None, stdout="working\n")
    run = Run(f"DemoFlow/{run_id}")
    assert run.status is RunStatus.RUNNING
    deadline = time.monotonic() + 15
    while run.status is RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.status is RunStatus.DEAD
    assert run.finished and not run.successful and run.finished_at is None
    assert [r.id for r in list_runs(status=RunStatus.DEAD)] == [run_id]
    assert Flow("DemoFlow").latest_run == run
    fake.meta.heartbeat(run_id)  # the runtime was only paused
    assert run.status is RunStatus.RUNNING


def test_live_logs_without_a_recorded_log_dir_use_the_runtime_layout(fake: Any, home: Path) -> None:
    run_id = fake.run()
    task_id = fake.meta.create_task(run_id, "train", foreach_stack=[], input_task_ids=[])
    fake.meta.start_attempt(task_id, 0, pid=None)
    log_dir = home / "logs" / "DemoFlow" / str(run_id) / "train" / str(task_id)
    log_dir.mkdir(parents=True)
    (log_dir / "0.out").write_text("epoch 1\n")
    task = Task(f"DemoFlow/{run_id}/train/{task_id}")
    assert task.stdout == "epoch 1\n"
    assert task.stderr == ""


def test_live_logs_in_a_task_directory_of_the_first_layout(fake: Any, home: Path) -> None:
    # 0.1.0 recorded a directory per task as log_dir, holding <attempt>.out/.err
    run_id = fake.run()
    log_dir = home / "logs" / "DemoFlow" / str(run_id) / "train" / "0"
    task_id = fake.meta.create_task(
        run_id, "train", foreach_stack=[], input_task_ids=[], log_dir=str(log_dir)
    )
    fake.meta.start_attempt(task_id, 0, pid=None)
    log_dir.mkdir(parents=True)
    (log_dir / "0.out").write_text("epoch 2\n")
    task = Task(f"DemoFlow/{run_id}/train/{task_id}")
    assert task.stdout == "epoch 2\n"
    assert task.stderr == ""
