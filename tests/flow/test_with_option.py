"""``--with DECORATOR[:attr=value,...]``: a step decorator on every step, from the command
line, as in Metaflow; unknown names and attributes are refused before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.client import Flow, Run
from shipyard.client.errors import NotFound
from shipyard.flow.decorators import parse_decospec, task_options
from shipyard.flow.exceptions import ParameterError
from shipyard.flow.launch import make_plan
from shipyard.flow.loader import load_flow
from shipyard.flow.runtime import Runtime
from shipyard.store.records import RunStatus, TaskStatus
from shipyard.testing import write_flow

FAILS_ONCE = """
import os
from pathlib import Path
from shipyard import FlowSpec, current, retry, step

class FailsOnceFlow(FlowSpec):
    @step
    def start(self):
        marker = Path(os.environ["FAILS_ONCE_MARKER"])
        if not marker.exists():
            marker.write_text("failed once")
            raise RuntimeError("the first attempt fails")
        self.attempt = current.retry_count
        self.next(self.end)

    @retry(times=0)
    @step
    def end(self):
        marker = Path(os.environ["FAILS_ONCE_MARKER"] + ".end")
        if not marker.exists():
            marker.write_text("failed once")
            raise RuntimeError("end's first attempt fails too")

if __name__ == "__main__":
    FailsOnceFlow()
"""


def run_with(source: str, *decospecs: str) -> Run:
    loaded = load_flow(write_flow(source))
    plan = make_plan(loaded, {}, max_workers=2, quiet=True, decospecs=decospecs)
    return Run(f"{loaded.flow_cls.__name__}/{Runtime(plan).run()}")


def test_with_retry_makes_a_step_that_fails_once_succeed_and_a_steps_own_retry_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAILS_ONCE_MARKER", str(tmp_path / "marker"))
    run = run_with(FAILS_ONCE, "retry:times=2,minutes_between_retries=0")
    start = run["start"].task
    assert start.successful and start.data.attempt == 1
    assert [a.status for a in start.attempts] == [TaskStatus.FAILED, TaskStatus.SUCCEEDED]
    # end has its own @retry(times=0): as in Metaflow, it keeps it, so its failure is final
    assert run.status is RunStatus.FAILED
    assert [a.status for a in run["end"].task.attempts] == [TaskStatus.FAILED]
    assert run.graph["with"] == ["retry:times=2,minutes_between_retries=0"]


def test_with_timeout_kills_a_sleeping_step() -> None:
    run = run_with(
        """
import time
from shipyard import FlowSpec, step

class SleepyWithFlow(FlowSpec):
    @step
    def start(self):
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        "timeout:seconds=1",
    )
    assert run.status is RunStatus.FAILED
    error = run["start"].task.exception
    assert error["type"] == "TimeoutError" and "@timeout of 1 s" in error["message"]


PLAIN = """
from shipyard import FlowSpec, catch, step

class PlainFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @catch(var="oops")
    @step
    def end(self):
        pass
"""


def test_with_resources_is_recorded_and_schedules_the_steps() -> None:
    loaded = load_flow(write_flow(PLAIN))
    plan = make_plan(loaded, {}, quiet=True, decospecs=["resources:cpu=2,memory=64"])
    assert [task_options(node).cpu for node in plan.graph] == [2, 2]
    assert [task_options(node).memory_mb for node in plan.graph] == [64, 64]
    run = Run(f"PlainFlow/{Runtime(plan).run()}")
    assert run.successful
    assert run.graph["with"] == ["resources:cpu=2,memory=64"]
    assert all("resources" in step["decorators"] for step in run.graph["steps"].values())


def test_values_are_python_literals_where_they_can_be() -> None:
    cls, attributes = parse_decospec("retry:times=2,minutes_between_retries=0.5")
    assert cls.name == "retry" and attributes == {"times": 2, "minutes_between_retries": 0.5}
    _, attributes = parse_decospec("catch:var=oops,print_exception=false")
    assert attributes == {"var": "oops", "print_exception": False}
    _, attributes = parse_decospec("environment:vars={'A': '1', 'B': 'x,y'}")
    assert attributes == {"vars": {"A": "1", "B": "x,y"}}
    _, attributes = parse_decospec("@timeout:seconds=True")
    assert attributes == {"seconds": True}  # a literal; the decorator's own check refuses it


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("retyr", "there is no step decorator 'retyr' (did you mean 'retry'?); known: "),
        ("timeout:secs=1", "@timeout has no attribute 'secs' (did you mean 'seconds'?)"),
        ("retry:times", "'times' is not attr=value"),
        ("conda", "@conda is not supported: no conda channel is reachable here; use @pypi("),
        ("conda_base", "use @pypi_base(packages={...})"),
        ("timeout:seconds=-1", "step 'start': @timeout(seconds=-1): expected a number >= 0"),
        ("timeout:seconds=True", "@timeout(seconds=True): expected a number"),
    ],
)
def test_bad_with_is_refused_before_anything_runs(spec: str, expected: str) -> None:
    loaded = load_flow(write_flow(PLAIN))
    with pytest.raises(ParameterError) as info:
        make_plan(loaded, {}, decospecs=[spec])
    assert expected in str(info.value) and f"--with {spec!r}" in str(info.value)
    if spec == "retyr":
        known = str(info.value).rpartition("known: ")[2].split(", ")
        assert {"retry", "timeout", "resources", "catch", "pypi"} <= set(known)
        assert "conda" not in known


def test_with_catch_on_a_foreach_is_refused_as_the_decorator_is() -> None:
    """--with catch on a foreach step is refused, naming the step, as @catch there is."""
    source = """
from shipyard import FlowSpec, step

class FanFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    loaded = load_flow(write_flow(source))
    with pytest.raises(ParameterError, match="step 'start': @catch cannot be used"):
        make_plan(loaded, {}, decospecs=["catch"])
    make_plan(loaded, {})  # the flow itself is fine


def test_the_command_line_takes_with_on_run_and_resume(tmp_path: Path) -> None:
    path = write_flow(FAILS_ONCE, tmp_path)
    env = {**os.environ, "FAILS_ONCE_MARKER": str(tmp_path / "marker")}

    def shipyard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shipyard", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    bad = shipyard("run", str(path), "--with", "retyr")
    assert bad.returncode == 2 and "did you mean 'retry'?" in bad.stderr
    with pytest.raises(NotFound):  # nothing ran: not even the flow is known
        Flow("FailsOnceFlow")
    out = subprocess.run(
        [sys.executable, str(path), "run", "--with", "retry:minutes_between_retries=0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr  # end keeps its own @retry(times=0)
    assert "start/" in out.stdout and "retrying (attempt 2 of 4)" in out.stdout
    run = Flow("FailsOnceFlow").latest_run
    assert run is not None and run["start"].task.successful
    resumed = shipyard("resume", run.pathspec, "--with", "timeout:seconds=30")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    latest = Flow("FailsOnceFlow").latest_run
    assert latest is not None and latest.successful
    assert latest.graph["with"] == ["timeout:seconds=30"]
    bad_resume = shipyard("resume", run.pathspec, "--with", "timeout:secs=1")
    assert bad_resume.returncode == 2 and "did you mean 'seconds'?" in bad_resume.stderr
