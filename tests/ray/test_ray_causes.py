"""Each way a Ray attempt can die, provoked on the session's cluster (plus nodes of the
tests' own), recorded with its named cause, the facts, and the last lines of its log: a
worker that calls os._exit or segfaults, a kill for memory in a memory cgroup, a node
removed mid-task, a snapshot that does not import. The version check's matching case."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from shipyard.cli.main import main
from shipyard.client import Run
from shipyard.config import settings
from shipyard.flow import failures
from shipyard.flow.ray_node import NODE_HOME
from shipyard.testing import write_flow
from support.ray_cluster import RayCluster, extra_node

MEMORY_LIMIT = 400 * 2**20


def ray_run(path: Path, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path), "run", "--executor", "ray", "--ray-address", address, *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def tail_of(message: str) -> list[str]:
    """The log lines the cause's message ends with."""
    _, _, tail = message.partition("the last lines of its log:\n")
    return [line.removeprefix("  | ") for line in tail.splitlines()]


CRASHES = """
import ctypes, os
from shipyard import FlowSpec, step

class CrashFlow(FlowSpec):
    @step
    def start(self):
        self.ways = ["exit", "segv"]
        self.next(self.crash, foreach="ways")

    @step
    def crash(self):
        print(f"first line of {self.input}", flush=True)
        print(f"about to {self.input}", flush=True)
        if self.input == "exit":
            os._exit(3)
        ctypes.string_at(0)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CrashFlow()
"""


def test_a_worker_that_exits_or_segfaults_is_a_worker_crash_with_its_status_and_log(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    out = ray_run(write_flow(CRASHES, tmp_path), ray_cluster.address)
    assert out.returncode == 1, out.stdout + out.stderr
    run = Run("CrashFlow/1")
    errors = {task.index: task.exception for task in run["crash"]}
    exited, segv = errors[0], errors[1]
    assert exited is not None and segv is not None
    assert exited["type"] == segv["type"] == failures.WORKER_CRASHED
    assert "the step called os._exit(3)" in exited["message"]
    assert "it died of SIGSEGV" in segv["message"]
    for error, way in ((exited, "exit"), (segv, "segv")):
        # the Ray task id (what Ray's own WorkerCrashedError leaves out) and the worker pid
        assert re.search(
            r"Ray task [0-9a-f]{16,}, worker pid \d+, node [0-9a-f]{20,}", error["message"]
        )
        tail = tail_of(error["message"])
        assert tail[:2] == [f"first line of {way}", f"about to {way}"], tail
    # after a fatal signal: the lines up to faulthandler's report, then the step's frames
    tail = tail_of(segv["message"])
    assert tail[2] == "Fatal Python error: Segmentation fault", tail
    assert any(line.endswith(" in crash") for line in tail[3:]), tail
    # the log is stored per attempt, as a local task's
    task = next(iter(run["crash"]))
    assert f"about to {'exit' if task.index == 0 else 'segv'}" in task.stdout
    # the CLI's run summary and task page name the cause
    shown = CliRunner().invoke(main, ["show", run.pathspec]).output
    assert shown.count("WorkerCrashed: the Ray worker running the task died") == 2
    page = CliRunner().invoke(main, ["show", task.pathspec]).output
    assert "WorkerCrashed" in page and "about to" in page


MEMORY = """
from shipyard import FlowSpec, ray_options, resources, step

class MemoryFlow(FlowSpec):
    @ray_options(resources={"node_mem": 0.01})
    @resources(memory=64)
    @step
    def start(self):
        print("allocating 1 GB in 10 MB blocks", flush=True)
        blocks = [b"x" * (10 * 2**20) for _ in range(100)]
        print("never printed", len(blocks))
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    MemoryFlow()
"""


def test_a_task_over_its_nodes_memory_cgroup_is_killed_for_memory_with_the_numbers(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    path = write_flow(MEMORY, tmp_path)
    with extra_node(ray_cluster, "node_mem", memory_limit=MEMORY_LIMIT) as (_, node_id):
        out = ray_run(path, ray_cluster.address)
    assert out.returncode == 1, out.stdout + out.stderr
    error = Run("MemoryFlow/1")["start"].task.exception
    assert error is not None and error["type"] == failures.MEMORY_KILLED, error
    message = error["message"]
    assert "the kernel's OOM killer ended the worker" in message
    assert f"node {node_id}" in message and "resources node_mem" in message
    assert "allows 400 MiB" in message
    used = int(re.search(r"reached (\d+) MiB", message).group(1))  # type: ignore[union-attr]
    assert 300 <= used <= 400
    assert "@resources(memory=64)" in message
    assert tail_of(message) == ["allocating 1 GB in 10 MB blocks"]
    assert "MemoryKilled" in out.stdout + out.stderr


LOST = """
import time
from pathlib import Path
from shipyard import FlowSpec, Parameter, ray_options, step

class LostFlow(FlowSpec):
    marker = Parameter("marker")

    @ray_options(resources={"node_lost": 0.01})
    @step
    def start(self):
        print("working on the doomed node", flush=True)
        print("still working", flush=True)
        Path(self.marker).write_text("running")
        time.sleep(120)
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    LostFlow()
"""


def test_a_node_removed_mid_task_is_node_lost_naming_it_with_the_streamed_log(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    path = write_flow(LOST, tmp_path)
    marker = tmp_path / "marker"
    with extra_node(ray_cluster, "node_lost") as (node, node_id):
        proc = subprocess.Popen(
            [
                sys.executable,
                str(path),
                "run",
                "--executor",
                "ray",
                "--ray-address",
                ray_cluster.address,
                "--marker",
                str(marker),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ),
        )
        try:
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
                time.sleep(0.1)
            # while it runs, its output reaches this machine's live log (`shipyard logs`,
            # the UI) through the blob store, as a local task's does
            task = Run("LostFlow/1")["start"].task
            while "still working" not in task.stdout:
                assert time.monotonic() < deadline, "the running task's log never arrived"
                time.sleep(0.2)
            ray_cluster.cluster.remove_node(node, allow_graceful=False)
            output, _ = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 1, output
    error = Run("LostFlow/1")["start"].task.exception
    assert error is not None and error["type"] == failures.NODE_LOST, error
    assert f"node {node_id} (127.0.0.1, resources node_lost)" in error["message"]
    assert tail_of(error["message"]) == ["working on the doomed node", "still working"]
    task = Run("LostFlow/1")["start"].task
    assert "still working" in task.stdout  # stored, per attempt
    # the lost node's directory for the attempt (on this one machine, its /tmp is ours)
    store = hashlib.sha256(settings().store_url.encode()).hexdigest()[:12]
    shutil.rmtree(NODE_HOME / "attempts" / f"LostFlow.1.{task.id}.0.{store}")


IMPORT_FAILS = """
import ray
from shipyard import FlowSpec, step

print("importing the flow on the node")
if ray.is_initialized():  # on a Ray worker only: a module the cluster does not have
    import module_the_cluster_lacks  # noqa: F401

class ImportFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    ImportFlow()
"""


def test_a_snapshot_import_error_names_the_cause_the_module_and_the_log(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    out = ray_run(write_flow(IMPORT_FAILS, tmp_path), ray_cluster.address)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "SnapshotImportError" in out.stdout + out.stderr, out.stdout + out.stderr
    task = Run("ImportFlow/1")["start"].task
    error = task.exception
    assert error is not None and error["type"] == failures.SNAPSHOT_IMPORT
    assert "ModuleNotFoundError: No module named 'module_the_cluster_lacks'" in error["message"]
    assert tail_of(error["message"]) == [
        "importing the flow on the node",
        "ModuleNotFoundError: No module named 'module_the_cluster_lacks'",
    ]
    assert "module_the_cluster_lacks" in error["traceback"]
    assert "importing the flow on the node" in task.stdout


def test_the_version_check_passes_on_a_cluster_of_this_machines_versions(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    from shipyard.flow.decorators import TaskOptions
    from shipyard.flow.ray_executor import RayExecutor
    from shipyard.flow.ray_node import versions

    executor = RayExecutor(
        code_key="0" * 64,
        flow_name="NoFlow",
        decospecs=[],
        options={"start": TaskOptions()},
        address=ray_cluster.address,
        store_url=f"file://{tmp_path / 'blobs'}",
    )
    try:
        found = executor.node_versions
    finally:
        executor.close()
    assert {label.split()[0] for label in found} >= set(ray_cluster.node_ids.values())
    assert all(v == versions() for v in found.values())


VERSIONED = """
from shipyard import FlowSpec, step

class CheckedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    CheckedFlow()
"""


def test_a_node_with_another_shipyard_is_refused_before_any_task_with_both_sides(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    import shipyard

    other = tmp_path / "other"  # this shipyard, but calling itself 0.0.1-other
    shutil.copytree(Path(shipyard.__file__).parent, other / "shipyard")
    init = other / "shipyard" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{shipyard.__version__}"', '"0.0.1-other"', 1))
    path = write_flow(VERSIONED, tmp_path)
    with extra_node(ray_cluster, "node_other", pythonpath=str(other)) as (_, node_id):
        out = ray_run(path, ray_cluster.address)
    assert out.returncode == 1, out.stdout + out.stderr
    said = out.stdout + out.stderr
    assert "runs other versions than this machine" in said
    assert (
        f"node {node_id} (127.0.0.1, resources node_other): shipyard 0.0.1-other  "
        f"(this machine: shipyard {shipyard.__version__})"
    ) in said
    assert ray_cluster.node_ids["node_a"] not in said  # the matching nodes are not listed
    run = Run("CheckedFlow/1")
    assert not run.successful and run.finished and list(run) == []  # no task ran
