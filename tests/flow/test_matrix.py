"""Every DAG shape x the engine's behaviours."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.store.records import RunStatus, TaskStatus
from shipyard.testing import resume_flow, run_flow, write_flow
from support.flow_shapes import SHAPES, expected, results, source

shapes = pytest.mark.parametrize("shape", sorted(SHAPES))


@shapes
def test_artifacts_flow_through_and_joins_see_every_input(shape: str) -> None:
    run = run_flow(source(shape), alpha=3)
    assert run.successful, [t.exception for t in run.tasks() if not t.successful]
    assert results(run) == expected(shape, alpha=3)
    assert run.parameters == {"alpha": 3}
    work = run["work"].tasks()
    assert len(work) == len(SHAPES[shape][1])
    # inherited artifacts reach every work task, parameters included
    assert {t.data.base for t in work} == {100}
    assert {t.data.alpha for t in work} == {3}


@shapes
def test_retry_then_success(shape: str) -> None:
    body = 'if current.retry_count < 2:\n            raise ValueError("flaky")'
    run = run_flow(source(shape, body, "@retry(times=2, minutes_between_retries=0)"))
    assert run.successful
    assert results(run) == expected(shape)
    for task in run["work"].tasks():
        attempts = task.attempts
        assert [a.status for a in attempts] == [TaskStatus.FAILED] * 2 + [TaskStatus.SUCCEEDED]
        assert "flaky" in attempts[0].error["message"]


@shapes
def test_a_crash_in_one_task_fails_only_that_task(shape: str) -> None:
    body = "if self.item == 0:\n            os.kill(os.getpid(), signal.SIGSEGV)"
    run = run_flow(source(shape, body))
    assert run.status is RunStatus.FAILED
    work = {t.data.item if t.successful else None: t for t in run["work"].tasks()}
    crashed = [t for t in run["work"].tasks() if t.status is TaskStatus.FAILED]
    assert len(crashed) == 1
    assert "SIGSEGV" in crashed[0].exception["message"]
    # the siblings that ran finished and kept their artifacts
    assert all(t.successful for item, t in work.items() if item is not None)
    assert "end" not in [s.name for s in run.steps() if s.tasks()]


@shapes
def test_resume_after_a_failure_reuses_the_right_tasks(shape: str, tmp_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.touch()
    body = (
        f"if self.item == 0 and os.path.exists({str(flag)!r}):\n"
        "            raise RuntimeError('bug')"
    )
    path = write_flow(source(shape, body), tmp_path)
    first = run_flow(path, alpha=2)
    assert first.status is RunStatus.FAILED
    flag.unlink()  # "fix the bug"
    second = resume_flow(first, path)
    assert second.successful
    assert second.origin_run == first
    assert results(second) == expected(shape, alpha=2)
    done_before = {t.data.item for t in first["work"].tasks() if t.successful}
    assert 0 not in done_before
    for task in second["work"].tasks():
        reused = task.origin_pathspec is not None
        assert reused == (task.data.item in done_before), (task.pathspec, task.origin_pathspec)
    assert (
        second["start"].task.origin_pathspec == f"{first.pathspec}/start/{first['start'].task.id}"
    )


@shapes
def test_catch_stores_the_failure_and_goes_on(shape: str) -> None:
    body = "if self.item == 0:\n            raise KeyError('boom')"
    flow = source(shape, body, "@catch(var='failure')")
    flow = flow.replace(
        "self.results = [self.out]", "self.results = [] if self.failure else [self.out]"
    )
    run = run_flow(flow)
    assert run.successful
    failures = [t.data.failure for t in run["work"].tasks()]
    caught = [f for f in failures if f is not None]
    assert len(caught) == 1 and caught[0].type == "KeyError" and "boom" in caught[0].message
    assert results(run) == [r for r in expected(shape) if r != 110]


def test_a_join_can_fan_out_again() -> None:
    run = run_flow(
        """
from shipyard import FlowSpec, step

class TwoRoundsFlow(FlowSpec):
    @step
    def start(self):
        self.xs = [1, 2, 3]
        self.next(self.square, foreach="xs")

    @step
    def square(self):
        self.y = self.input ** 2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.ys = sorted(i.y for i in inputs)
        self.next(self.double, foreach="ys")

    @step
    def double(self):
        self.z = self.input * 2
        self.next(self.total)

    @step
    def total(self, inputs):
        self.result = sum(i.z for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    assert run.successful
    assert run["end"].task.data.result == 2 * (1 + 4 + 9)
    assert len(run["double"].tasks()) == 3
