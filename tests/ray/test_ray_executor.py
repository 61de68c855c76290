"""``--executor ray`` on the session's two-node cluster: the same artifacts as locally,
tasks on both nodes, a step's exception recorded with its traceback, and each run importing
its own code snapshot even when warm workers served the previous version."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shipyard.client import Run
from shipyard.testing import write_flow
from support.ray_cluster import RayCluster

SHAPES = """
from shipyard import FlowSpec, ray_options, resources, step


def node():
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


class ShapesFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.square, foreach="items")

    @resources(cpu=1)
    @step
    def square(self):
        self.value = self.input ** 2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.on_a, self.on_b)

    @ray_options(resources={"node_a": 0.01})
    @step
    def on_a(self):
        self.node = node()
        self.a = self.total + 1
        self.next(self.both)

    @ray_options(resources={"node_b": 0.01})
    @step
    def on_b(self):
        self.node = node()
        self.b = self.total + 2
        self.next(self.both)

    @step
    def both(self, inputs):
        self.nodes = sorted(i.node for i in inputs)
        self.result = inputs.on_a.a * inputs.on_b.b
        self.next(self.end)

    @step
    def end(self):
        print("result", self.result)

if __name__ == "__main__":
    ShapesFlow()
"""

BROKEN = """
from shipyard import FlowSpec, step

class BrokenFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.explode)

    @step
    def explode(self):
        raise ValueError(f"boom {self.x + 41}")
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    BrokenFlow()
"""

VERSIONED = """
from shipyard import FlowSpec, step

VERSION = {version}

class VersionFlow(FlowSpec):
    @step
    def start(self):
        self.seen = VERSION
        self.next(self.end)

    @step
    def end(self):
        self.seen_at_end = VERSION

if __name__ == "__main__":
    VersionFlow()
"""


def run_flow(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path), "run", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def artifacts(run: Run) -> dict[str, dict[str, Any]]:
    """step -> artifact name -> value, for every task (a foreach's by index)."""
    found: dict[str, dict[str, Any]] = {}
    for step in run:
        for task in step:
            key = step.name if task.index is None else f"{step.name}[{task.index}]"
            found[key] = {a.name: a.data for a in task if a.name not in ("node", "nodes")}
    return found


def test_a_foreach_join_and_branch_flow_gives_the_same_artifacts_on_ray(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    path = write_flow(SHAPES, tmp_path)
    local = run_flow(path)
    assert local.returncode == 0, local.stderr
    out = run_flow(path, "--executor", "ray", "--ray-address", ray_cluster.address)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "result 240" in out.stdout
    on_ray, here = Run("ShapesFlow/2"), Run("ShapesFlow/1")
    assert artifacts(on_ray) == artifacts(here)
    assert on_ray["end"].task.data.result == (14 + 1) * (14 + 2)
    # the two pinned steps ran on the node each asked for: both nodes served the run
    assert on_ray["on_a"].task.data.node == ray_cluster.node_ids["node_a"]
    assert on_ray["on_b"].task.data.node == ray_cluster.node_ids["node_b"]
    assert here["both"].task.data.nodes == ["local", "local"]
    # the runtime recorded each attempt's node
    assert on_ray["on_b"].task.record.result["node"] == ray_cluster.node_ids["node_b"]


def test_a_steps_exception_on_ray_is_recorded_with_its_traceback(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    path = write_flow(BROKEN, tmp_path)
    out = run_flow(path, "--executor", "ray", "--ray-address", ray_cluster.address)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ValueError: boom 42" in out.stdout + out.stderr
    run = Run("BrokenFlow/1")
    assert not run.successful and run.finished
    error = run["explode"].task.exception
    assert error is not None and error["type"] == "ValueError"
    assert error["message"] == "boom 42"
    assert 'raise ValueError(f"boom {self.x + 41}")' in error["traceback"]
    assert "end" not in [s.name for s in run]


def test_two_versions_of_one_flow_file_each_run_their_own_code(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    path = tmp_path / "version_flow.py"  # one file, edited between runs
    for version in (1, 2, 3):
        path.write_text(VERSIONED.format(version=version))
        out = run_flow(path, "--executor", "ray", "--ray-address", ray_cluster.address)
        assert out.returncode == 0, out.stdout + out.stderr
        end = Run(f"VersionFlow/{version}")["end"].task
        assert (end.data.seen, end.data.seen_at_end) == (version, version)


def test_without_an_address_a_local_ray_is_started_for_the_run_and_stopped(
    tmp_path: Path,
) -> None:
    path = write_flow(VERSIONED.format(version=7), tmp_path)
    out = run_flow(path, "--executor", "ray")
    assert out.returncode == 0, out.stdout + out.stderr
    assert Run("VersionFlow/1")["end"].task.data.seen_at_end == 7
    assert Run("VersionFlow/1")["end"].task.record.result["node"]


SLOW = """
import time
from shipyard import FlowSpec, step, timeout

class SlowFlow(FlowSpec):
    @timeout(seconds=2)
    @step
    def start(self):
        print("sleeping", flush=True)
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    SlowFlow()
"""


def test_a_timeout_on_ray_cancels_the_task_and_names_the_cause(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    path = write_flow(SLOW, tmp_path)
    started = time.monotonic()
    out = run_flow(path, "--executor", "ray", "--ray-address", ray_cluster.address)
    assert out.returncode == 1, out.stdout + out.stderr
    assert time.monotonic() - started < 40
    error = Run("SlowFlow/1")["start"].task.exception
    assert error is not None and error["type"] == "TimeoutError", error
    assert Run("SlowFlow/1")["start"].task.stdout == "sleeping\n"  # the log is stored


RESUMABLE = """
from pathlib import Path
from shipyard import FlowSpec, Parameter, step

class ResumableFlow(FlowSpec):
    marker = Parameter("marker", default="")

    @step
    def start(self):
        self.x = 20
        self.next(self.middle)

    @step
    def middle(self):
        if self.marker and Path(self.marker).exists():
            raise RuntimeError("the marker file is there")
        self.y = self.x + 1
        self.next(self.end)

    @step
    def end(self):
        self.z = self.y * 2

if __name__ == "__main__":
    ResumableFlow()
"""


def test_a_local_run_resumes_on_ray_and_runner_takes_the_executor(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    from shipyard import Runner

    marker = tmp_path / "marker"
    marker.touch()
    path = write_flow(RESUMABLE, tmp_path)
    first = run_flow(path, "--marker", str(marker))
    assert first.returncode == 1 and "the marker file is there" in first.stdout + first.stderr
    marker.unlink()
    resumed = subprocess.run(
        [sys.executable, str(path), "resume", "--executor", "ray"],
        capture_output=True,
        text=True,
        env={**os.environ, "SHIPYARD_RAY_ADDRESS": ray_cluster.address},
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    run = Run("ResumableFlow/2")
    assert run.origin_run == Run("ResumableFlow/1") and run["end"].task.data.z == 42
    assert "node" not in run["start"].task.record.result  # reused from the local run
    assert run["middle"].task.record.result["node"] in ray_cluster.node_ids.values()
    # Runner passes the executor and the address on
    done = Runner(str(path), executor="ray", ray_address=ray_cluster.address).run()
    third = Run("ResumableFlow/3")
    assert third.successful, done.status
    assert third["end"].task.record.result["node"] in ray_cluster.node_ids.values()


LEAKY = """
import os

from shipyard import FlowSpec, environment, ray_options, step


class LeakyFlow(FlowSpec):
    @ray_options(resources={"node_a": 0.01})
    @environment(vars={"SHIPYARD_LEAK_PROBE": "set"})
    @step
    def start(self):
        os.chdir("/")
        self.seen = os.environ.get("SHIPYARD_LEAK_PROBE")
        self.next(self.after)

    @ray_options(resources={"node_a": 0.01})
    @step
    def after(self):
        self.seen_after = [
            os.environ.get("SHIPYARD_LEAK_PROBE") for _ in range(1)
        ] + [os.getcwd()]
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LeakyFlow()
"""


def test_a_reused_ray_worker_does_not_carry_one_tasks_environment_into_the_next(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    # node_a has one CPU: the second step runs in the worker the first one used
    path = write_flow(LEAKY, tmp_path)
    out = run_flow(path, "--executor", "ray", "--ray-address", ray_cluster.address)
    assert out.returncode == 0, out.stdout + out.stderr
    run = Run("LeakyFlow/1")
    assert run["start"].task.data.seen == "set"
    seen, cwd = run["after"].task.data.seen_after
    assert seen is None
    assert cwd != "/"


TRIGGERED = """
from shipyard import FlowSpec, current, project, step


@project(name="shelf")
class TriggeredFlow(FlowSpec):
    @step
    def start(self):
        trigger = current.trigger
        self.seen = (trigger.type, trigger.event, trigger.payload) if trigger else None
        self.project = (current.project_name, current.branch_name)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    TriggeredFlow()
"""


def test_a_task_on_ray_sees_why_its_run_runs_and_its_project(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    path = write_flow(TRIGGERED, tmp_path)
    why = '{"type": "event", "event": "ratings-updated", "payload": {"date": "2026-12-05"}}'
    address = ("--executor", "ray", "--ray-address", ray_cluster.address)
    out = run_flow(path, *address, "--shipyard-trigger", why)
    assert out.returncode == 0, out.stdout + out.stderr
    start = Run("TriggeredFlow/1")["start"].task.data
    assert start.seen == ("event", "ratings-updated", {"date": "2026-12-05"})
    assert start.project[0] == "shelf" and start.project[1].startswith("user.")
    # the same warm workers, a run started by hand: no trigger left over from the last one
    out = run_flow(path, *address)
    assert out.returncode == 0, out.stdout + out.stderr
    assert Run("TriggeredFlow/2")["start"].task.data.seen is None
