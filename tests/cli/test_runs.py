"""The read-side commands (runs, show, logs, artifacts, gc, tag) over runs built in the store."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from shipyard.cli import artifacts, housekeeping
from shipyard.cli import runs as runs_cli
from shipyard.cli.main import main
from shipyard.store import context as _stores
from shipyard.store.records import RunStatus, TaskStatus
from support.fakes import FakeRuns


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(path))
    monkeypatch.setenv("COLUMNS", "200")
    for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(var, raising=False)
    return path


@pytest.fixture
def fake(home: Path) -> Iterator[Any]:
    runs = FakeRuns(home)
    yield runs
    runs.close()
    _stores.reset()


def invoke(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    if code == 0:
        assert result.exception is None
    return result


# --- runs ----------------------------------------------------------------------------------
def test_runs_lists_newest_first_with_status_and_tags(fake: Any) -> None:
    first = fake.demo_run(tags=["nightly"])
    second = fake.demo_run(status=RunStatus.FAILED)
    other = fake.demo_run("OtherFlow")
    out = invoke("runs").output
    lines = [line for line in out.splitlines() if "Flow/" in line]
    assert [line.split()[0] for line in lines] == [
        f"OtherFlow/{other.run_id}",
        f"DemoFlow/{second.run_id}",
        f"DemoFlow/{first.run_id}",
    ]
    assert "failed" in lines[1] and "succeeded" in lines[2] and "nightly" in lines[2]
    assert f"DemoFlow/{first.run_id}" not in invoke("runs", "--flow", "OtherFlow").output
    tagged = invoke("runs", "--tag", "nightly").output
    assert f"DemoFlow/{first.run_id}" in tagged and f"/{second.run_id} " not in tagged
    failed = invoke("runs", "--status", "failed").output
    assert f"DemoFlow/{second.run_id}" in failed and f"DemoFlow/{first.run_id}" not in failed
    limited = invoke("runs", "-n", "1").output
    assert f"OtherFlow/{other.run_id}" in limited and "DemoFlow" not in limited
    assert "No runs match" in invoke("runs", "--tag", "nope").output


def test_runs_errors(fake: Any) -> None:
    assert "No runs yet" in invoke("runs").output
    fake.demo_run()
    assert "known flows: DemoFlow" in invoke("runs", "--flow", "Nope", code=1).output
    assert "not a flow name" in invoke("runs", "--flow", "bad-name", code=2).output
    assert "Invalid value for '--status'" in invoke("runs", "--status", "great", code=2).output
    assert "--limit" in invoke("runs", "--limit", "0", code=2).output


# --- show ----------------------------------------------------------------------------------
def test_show_run_draws_the_dag_with_statuses_and_counts(fake: Any) -> None:
    demo = fake.demo_run(tags=["nightly"])
    out = invoke("show", f"DemoFlow/{demo.run_id}").output
    assert f"DemoFlow/{demo.run_id}" in out and "succeeded" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "→ train" in lines["start"] and "(foreach grid)" in lines["start"]
    train = next(line for line in out.splitlines() if "train ×3" in line)
    assert train.startswith("  └ train ×3") and "3/3" in train and "→ join" in train
    assert "1/1" in lines["end"]
    assert out.index("start") < out.index("train ×3") < out.index("join") < out.index("end ")
    assert "alpha = 0.5" in out and "name = 'demo'" in out
    assert "tags nightly" in out


def test_show_flow_shows_its_latest_run(fake: Any) -> None:
    fake.demo_run()
    latest = fake.demo_run()
    out = invoke("show", "DemoFlow").output
    assert out.startswith(f"DemoFlow/{latest.run_id} ")


def test_show_run_in_progress_and_failures(fake: Any) -> None:
    run_id = fake.run()
    fake.task(run_id, "start", result={"num_splits": 2})
    fake.task(run_id, "train", index=0, num_splits=2)
    bad = fake.task(
        run_id,
        "train",
        index=1,
        num_splits=2,
        status=TaskStatus.FAILED,
        error={"type": "ZeroDivisionError", "message": "division by zero", "traceback": "tb"},
    )
    out = invoke("show", f"DemoFlow/{run_id}").output
    assert "running" in out
    assert "train ×2" in out and "1/2" in out
    join = next(line for line in out.splitlines() if line.startswith("join"))
    assert "0/0" in join
    assert f"DemoFlow/{run_id}/train/{bad}: ZeroDivisionError: division by zero" in out


def test_show_step_lists_its_tasks(fake: Any) -> None:
    demo = fake.demo_run()
    out = invoke("show", f"DemoFlow/{demo.run_id}/train").output
    assert "3/3 tasks done" in out
    for index, task_id in enumerate(demo.train):
        line = next(
            x for x in out.splitlines() if x.startswith(f"DemoFlow/{demo.run_id}/train/{task_id} ")
        )
        assert line.split()[1] == str(index) and "succeeded" in line


def test_show_task_attempts_artifacts_and_log_tail(fake: Any) -> None:
    run_id = fake.run()
    stdout = "".join(f"line {i}\n" for i in range(30))
    task_id = fake.task(
        run_id, "start", failures=1, artifacts={"model": {"w": 1}, "n": 3}, stdout=stdout
    )
    out = invoke("show", f"DemoFlow/{run_id}/start/{task_id}").output
    assert "ValueError: flaky 0" in out  # the failed first attempt
    assert "builtins.dict" in out and "{'w': 1}" in out
    assert "line 29" in out and "line 10" in out and "line 9\n" not in out


def test_show_errors(fake: Any) -> None:
    demo = fake.demo_run()
    assert (
        f"latest runs of DemoFlow: {demo.run_id}" in invoke("show", "DemoFlow/999", code=1).output
    )
    assert "steps: start" in invoke("show", f"DemoFlow/{demo.run_id}/nope", code=1).output
    assert "known flows: DemoFlow" in invoke("show", "Nope", code=1).output
    out = invoke("show", "DemoFlow/x", code=2).output
    assert "Flow/run_id[/step[/task_id]]" in out and "run id 'x' is not a number" in out


# --- logs ----------------------------------------------------------------------------------
def test_logs_of_a_task_step_and_run(fake: Any) -> None:
    demo = fake.demo_run(grid=(1, 2))
    task = f"DemoFlow/{demo.run_id}/train/{demo.train[1]}"
    # logs recorded without stamps (before 0.x): standard output, then standard error
    assert invoke("logs", task).output == "training 2\nscore 0.2\nwarn 2\n"
    assert invoke("logs", task, "--stdout").output == "training 2\nscore 0.2\n"
    assert invoke("logs", task, "--stderr").output == "warn 2\n"
    step = invoke("logs", f"DemoFlow/{demo.run_id}/train", "--stdout").output
    assert step.splitlines() == [
        f"train/{demo.train[0]} | training 1",
        f"train/{demo.train[0]} | score 0.1",
        f"train/{demo.train[1]} | training 2",
        f"train/{demo.train[1]} | score 0.2",
    ]
    run = invoke("logs", f"DemoFlow/{demo.run_id}").output.splitlines()
    assert run[0] == f"start/{demo.start} | starting" and len(run) == 7


def test_logs_attempts_and_live_files(fake: Any) -> None:
    run_id = fake.run()
    retried = fake.task(run_id, "start", failures=1, stdout="second try\n")
    live = fake.task(run_id, "train", status=None, stdout="in progress\n")
    assert invoke("logs", f"DemoFlow/{run_id}/start/{retried}").output == "second try\n"
    out = invoke("logs", f"DemoFlow/{run_id}/start/{retried}", "--attempt", "0").output
    assert out == "attempt 0 out\nattempt 0 err\n"
    assert invoke("logs", f"DemoFlow/{run_id}/train/{live}").output == "in progress\n"
    every = invoke("logs", f"DemoFlow/{run_id}", "--attempt", "1").output
    assert every == f"start/{retried} | second try\n"  # the live task has no attempt 1
    missing = invoke("logs", f"DemoFlow/{run_id}/start/{retried}", "--attempt", "5", code=1)
    assert "has no attempt 5; it has 0, 1" in missing.output
    assert "Flow/run_id" in invoke("logs", "DemoFlow", code=2).output
    assert "--attempt" in invoke("logs", f"DemoFlow/{run_id}", "--attempt", "-1", code=2).output


# --- artifacts -----------------------------------------------------------------------------
def test_artifacts_list_and_get(fake: Any, tmp_path: Path) -> None:
    demo = fake.demo_run()
    join = f"DemoFlow/{demo.run_id}/join/{demo.join}"
    listing = invoke("artifacts", "list", join).output
    best = next(line for line in listing.splitlines() if line.startswith("best"))
    assert "builtins.float" in best and "0.3" in best and " B" in best
    assert "best" in invoke("artifacts", "list", f"DemoFlow/{demo.run_id}/join").output
    assert invoke("artifacts", "get", f"{join}:best").output == "0.3\n"
    target = tmp_path / "blob.bin"
    invoke("artifacts", "get", f"{join}:blob", "-o", str(target))
    assert target.read_bytes() == b"\x00raw"
    model = tmp_path / "model.pkl"
    invoke("artifacts", "get", f"DemoFlow/{demo.run_id}/end/{demo.end}:model", "-o", str(model))
    assert pickle.loads(model.read_bytes()) == {"kind": "demo", "best": 3}


def test_artifacts_errors(fake: Any) -> None:
    demo = fake.demo_run()
    join = f"DemoFlow/{demo.run_id}/join/{demo.join}"
    assert "its artifacts: best, blob" in invoke("artifacts", "get", f"{join}:nope", code=1).output
    assert "Flow/run_id/step/task_id:name" in invoke("artifacts", "get", join, code=2).output
    many = invoke("artifacts", "list", f"DemoFlow/{demo.run_id}/train", code=2).output
    assert "has 3 tasks" in many
    assert (
        "Flow/run_id/step" in invoke("artifacts", "list", f"DemoFlow/{demo.run_id}", code=2).output
    )


# --- gc ------------------------------------------------------------------------------------
def test_gc_dry_run_then_real(fake: Any) -> None:
    old = fake.demo_run(grid=(1,))
    kept = fake.demo_run(grid=(2,))
    out = invoke("gc", "--keep", "1", "--dry-run").output
    assert f"would delete 1 run(s): DemoFlow/{old.run_id}" in out
    invoke("runs").output.index(f"DemoFlow/{old.run_id}")  # still there
    out = invoke("gc", "--keep", "1", "--older-than", "0s").output
    assert f"deleted 1 run(s): DemoFlow/{old.run_id}" in out
    assert "kept" in out  # the young blobs of the deleted run stay for the grace period
    listing = invoke("runs").output
    assert f"DemoFlow/{old.run_id}" not in listing and f"DemoFlow/{kept.run_id}" in listing


def test_gc_usage_errors(fake: Any) -> None:
    assert "--older-than DURATION and/or --keep N" in invoke("gc", code=2).output
    assert "bad duration '30 days'" in invoke("gc", "--older-than", "30 days", code=2).output
    assert "--keep" in invoke("gc", "--keep", "-1", code=2).output


# --- tag -----------------------------------------------------------------------------------
def test_tag_add_and_remove(fake: Any) -> None:
    demo = fake.demo_run(tags=["a"])
    run = f"DemoFlow/{demo.run_id}"
    assert invoke("tag", "add", run, "b", "c").output == f"{run} tags: a, b, c\n"
    assert invoke("tag", "remove", run, "a", "zzz").output == f"{run} tags: b, c\n"
    assert "b, c" in invoke("runs").output


def test_tag_errors(fake: Any) -> None:
    demo = fake.demo_run()
    run = f"DemoFlow/{demo.run_id}"
    assert "not found" in invoke("tag", "add", "DemoFlow/999", "x", code=1).output
    assert "bad tag ' x'" in invoke("tag", "add", run, " x", code=2).output
    assert "Missing argument 'TAGS...'" in invoke("tag", "add", run, code=2).output
    assert "Flow/run_id" in invoke("tag", "add", f"{run}/end", "x", code=2).output


# --- help ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["runs"],
        ["show"],
        ["logs"],
        ["artifacts"],
        ["artifacts", "list"],
        ["artifacts", "get"],
        ["gc"],
        ["tag"],
        ["tag", "add"],
        ["tag", "remove"],
    ],
)
def test_every_command_has_help_with_an_example(home: Path, args: list[str]) -> None:
    out = invoke(*args, "--help").output
    assert "Example" in out and "shipyard " in out


def test_commands_are_exported() -> None:
    commands = [*runs_cli.COMMANDS, *artifacts.COMMANDS, *housekeeping.COMMANDS]
    assert all(isinstance(c, click.Command) for c in commands)
    assert {c.name for c in commands} == {"runs", "show", "logs", "artifacts", "gc", "tag"}
    assert {c.name for c in commands} <= set(main.commands)


def test_an_artifact_whose_blob_is_gone_is_an_error_not_a_traceback(
    fake: Any, home: Path, tmp_path: Path
) -> None:
    demo = fake.demo_run()
    blobs = [p for p in (home / "blobs").rglob("*") if p.is_file()]
    assert blobs, "the demo run stores some artifact as a blob"
    for path in blobs:
        path.unlink()
    model = f"DemoFlow/{demo.run_id}/end/{demo.end}:model"
    result = invoke("artifacts", "get", model, "-o", str(tmp_path / "m.pkl"), code=1)
    assert "Traceback" not in result.output
    assert "which is missing from" in result.output and "deleted by gc" in result.output
