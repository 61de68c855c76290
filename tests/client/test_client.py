"""Flow / Run / Step / Task over finished runs built directly through the stores."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.client import (
    DataArtifact,
    Flow,
    NotFound,
    Run,
    RunStatus,
    Step,
    Task,
    TaskStatus,
    flows,
    list_runs,
)


def test_flow_lists_runs_newest_first_and_filters_by_tag(fake: Any) -> None:
    first = fake.demo_run(tags=["nightly"])
    second = fake.demo_run(status=RunStatus.FAILED)
    third = fake.demo_run(tags=["nightly", "big"])
    flow = Flow("DemoFlow")
    assert [r.id for r in flow.runs()] == [third.run_id, second.run_id, first.run_id]
    assert [r.id for r in flow] == [third.run_id, second.run_id, first.run_id]
    assert [r.id for r in flow.runs("nightly")] == [third.run_id, first.run_id]
    assert [r.id for r in flow.runs("nightly", "big")] == [third.run_id]
    assert flow.latest_run is not None and flow.latest_run.id == third.run_id
    assert flow.latest_successful_run == Run(f"DemoFlow/{third.run_id}")
    assert flow[second.run_id].status is RunStatus.FAILED
    assert [f.name for f in flows()] == ["DemoFlow"]
    failed = list_runs(status="failed")
    assert [r.id for r in failed] == [second.run_id]


def test_latest_successful_run_skips_failures(fake: Any) -> None:
    ok = fake.demo_run()
    fake.demo_run(status=RunStatus.FAILED)
    assert Flow("DemoFlow").latest_successful_run == Run(f"DemoFlow/{ok.run_id}")


def test_run_properties(fake: Any) -> None:
    demo = fake.demo_run(tags=["a"])
    run = Run(f"DemoFlow/{demo.run_id}")
    assert run.status is RunStatus.SUCCEEDED
    assert run.successful and run.finished
    assert run.finished_at is not None and run.finished_at >= run.created_at
    assert run.created_at.tzinfo is not None
    assert run.parameters == {"alpha": 0.5, "name": "demo"}
    assert run.tags == {"a"}
    assert [s.name for s in run.steps()] == ["start", "train", "join", "end"]
    assert [s.name for s in run] == ["start", "train", "join", "end"]
    assert "train" in run and "nope" not in run
    assert run.end_task is not None and run.end_task.id == demo.end
    assert run.data is not None and run.data.model == {"kind": "demo", "best": 3}
    assert run.origin_run is None


def test_tags_add_and_remove_are_read_back(fake: Any) -> None:
    demo = fake.demo_run(tags=["a"])
    run = Run(f"DemoFlow/{demo.run_id}")
    run.add_tag("b")
    run.add_tags(["c", "b"])
    assert Run(run.pathspec).tags == {"a", "b", "c"}
    run.remove_tag("a")
    assert run.tags == {"b", "c"}
    with pytest.raises(ValueError, match="bad tag"):
        run.add_tag(" ")


def test_origin_run(fake: Any) -> None:
    origin = fake.demo_run(status=RunStatus.FAILED)
    resumed = fake.run(origin_run_id=origin.run_id)
    assert Run(f"DemoFlow/{resumed}").origin_run == Run(f"DemoFlow/{origin.run_id}")


def test_step_and_tasks(fake: Any) -> None:
    demo = fake.demo_run(grid=(4, 5, 6))
    step = Run(f"DemoFlow/{demo.run_id}")["train"]
    assert isinstance(step, Step)
    assert step.pathspec == f"DemoFlow/{demo.run_id}/train"
    assert [t.id for t in step.tasks()] == demo.train
    assert [t.index for t in step] == [0, 1, 2]
    assert [t.data.score for t in step] == [0.4, 0.5, 0.6]
    assert step.task.id == demo.train[0]
    assert len(step) == 3
    assert step[demo.train[1]].data.factor == 5
    assert step.status is TaskStatus.SUCCEEDED
    assert Step(step.pathspec).task == step.task
    summaries = {s.name: s for s in Run(f"DemoFlow/{demo.run_id}").step_summaries()}
    assert summaries["train"].tasks == 3 and summaries["train"].done == 3
    assert summaries["start"].type == "foreach" and summaries["start"].foreach == "grid"
    assert summaries["end"].next == ()


def test_task_data_and_artifacts(fake: Any) -> None:
    demo = fake.demo_run()
    task = Task(f"DemoFlow/{demo.run_id}/join/{demo.join}")
    assert task.successful and task.finished and task.status is TaskStatus.SUCCEEDED
    assert task.index is None
    assert task.data.best == 0.3
    assert task.data.blob == b"\x00raw"
    assert "best" in task.data and "nope" not in task.data
    assert sorted(task.data) == ["best", "blob"]
    with pytest.raises(AttributeError, match="no artifact 'nope'; its artifacts: best, blob"):
        task.data.nope  # noqa: B018
    artifact = task.artifacts["best"]
    assert isinstance(artifact, DataArtifact)
    assert artifact.type_name == "builtins.float"
    assert artifact.preview == "0.3"
    assert artifact.size > 0 and len(artifact.sha) == 64
    assert artifact.pathspec == f"{task.pathspec}:best"
    assert artifact.data == 0.3
    assert task["blob"].data == b"\x00raw"
    with pytest.raises(NotFound, match="its artifacts: best, blob"):
        task["model"]
    assert task.run == Run(f"DemoFlow/{demo.run_id}")
    assert task.parent.name == "join"


def test_task_data_is_loaded_lazily_and_cached(fake: Any) -> None:
    demo = fake.demo_run()
    task = Task(f"DemoFlow/{demo.run_id}/end/{demo.end}")
    loads: list[str] = []
    loader = task._loader
    original = loader.load

    def counting(record: Any, where: str) -> Any:
        loads.append(record.name)
        return original(record, where)

    loader.load = counting  # type: ignore[method-assign]
    data = task.data
    assert loads == []
    assert data.model["best"] == 3
    assert task.data.model["kind"] == "demo"
    assert loads == ["model"]


def test_ranged_artifact_is_read_with_get_range(fake: Any) -> None:
    from shipyard.store import serialize
    from shipyard.store.records import ArtifactRecord

    run_id = fake.run()
    a, b = serialize.encode([1, 2, 3], name="a"), serialize.encode("second", name="b")
    abytes, bbytes = b"".join(a.chunks), b"".join(b.chunks)
    key = fake.put_bytes(abytes + bbytes)
    records = [
        ArtifactRecord("first", key, a.size, a.encoding, a.type_name, a.preview, 0, len(abytes)),
        ArtifactRecord(
            "second", key, b.size, b.encoding, b.type_name, b.preview, len(abytes), len(bbytes)
        ),
    ]
    task_id = fake.meta.create_task(run_id, "start", foreach_stack=[], input_task_ids=[])
    fake.meta.start_attempt(task_id, 0, pid=None)
    fake.meta.finish_attempt(task_id, 0, status=TaskStatus.SUCCEEDED, artifacts=records)
    task = Task(f"DemoFlow/{run_id}/start/{task_id}")
    assert task.data.first == [1, 2, 3]
    assert task.data.second == "second"


def test_attempts_logs_and_exception(fake: Any) -> None:
    run_id = fake.run()
    error = {"type": "KeyError", "message": "'x'", "traceback": "Traceback ..."}
    task_id = fake.task(
        run_id, "start", status=TaskStatus.FAILED, failures=2, error=error, stdout="final out\n"
    )
    task = Task(f"DemoFlow/{run_id}/start/{task_id}")
    assert task.status is TaskStatus.FAILED and not task.successful and task.finished
    assert [a.number for a in task.attempts] == [0, 1, 2]
    assert [a.status for a in task.attempts] == [TaskStatus.FAILED] * 3
    assert task.exception == error
    assert task.attempts[0].error is not None
    assert task.attempts[0].error["message"] == "flaky 0"
    assert task.stdout == "final out\n"
    assert task.stderr == ""
    assert task.logs(0) == "attempt 0 out\n"
    assert task.logs(1, "stderr") == "attempt 1 err\n"
    assert task.attempts[1].stdout == "attempt 1 out\n"
    with pytest.raises(NotFound, match="has no attempt 7; it has 0, 1, 2"):
        task.logs(7)
    with pytest.raises(AttributeError, match="has not succeeded"):
        task.data.anything  # noqa: B018


def test_unknown_things_raise_not_found_naming_what_exists(fake: Any) -> None:
    demo = fake.demo_run()
    with pytest.raises(NotFound, match="flow 'Nope' not found; known flows: DemoFlow"):
        Flow("Nope")
    with pytest.raises(NotFound, match=f"latest runs of DemoFlow: {demo.run_id}") as info:
        Run("DemoFlow/999")
    assert isinstance(info.value, KeyError)
    assert info.value.pathspec == "DemoFlow/999"
    with pytest.raises(NotFound, match="flow 'Other' has no runs"):
        Run(f"Other/{demo.run_id}")  # the id exists, under another flow
    run = Run(f"DemoFlow/{demo.run_id}")
    with pytest.raises(NotFound, match="steps: start, train, join, end"):
        run["nope"]
    tasks = ", ".join(map(str, demo.train))
    with pytest.raises(NotFound, match=f"tasks of DemoFlow/{demo.run_id}/train: {tasks}"):
        Task(f"DemoFlow/{demo.run_id}/train/{demo.end}")  # exists, in another step
    with pytest.raises(NotFound):
        Step(f"DemoFlow/{demo.run_id}/nope")


@pytest.mark.parametrize(
    ("cls", "text"),
    [(Run, "DemoFlow"), (Run, "DemoFlow/x"), (Task, "DemoFlow/1/train"), (Flow, "A/1")],
)
def test_bad_pathspecs_raise_value_error(fake: Any, cls: type, text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        cls(text)


def test_step_without_tasks_yet(fake: Any) -> None:
    run_id = fake.run()
    fake.task(run_id, "start")
    run = Run(f"DemoFlow/{run_id}")
    assert [s.name for s in run.steps()] == ["start"]
    step = run["join"]  # in the graph, not started
    assert step.tasks() == [] and step.status is None
    with pytest.raises(NotFound, match="has no task yet"):
        step.task  # noqa: B018
    assert run.end_task is None and run.data is None


def test_artifact_whose_class_is_gone_raises_a_client_error(fake: Any) -> None:
    from shipyard.client import ClientError

    run_id = fake.run()  # no code snapshot: the class must be importable normally
    task_id = fake.task(run_id, "start", artifacts={"when": _Gone()})
    task = Task(f"DemoFlow/{run_id}/start/{task_id}")
    saved = globals().pop("_Gone")
    try:
        with pytest.raises(ClientError, match=r"cannot load artifact .*:when .*_Gone"):
            task.data.when  # noqa: B018
    finally:
        globals()["_Gone"] = saved


class _Gone:
    pass
