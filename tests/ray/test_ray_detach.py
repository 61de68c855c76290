"""Runs that outlive what started them: a run whose whole cluster is lost fails in bounded
time with the cause named, and resumes elsewhere (locally, or on another cluster) reusing
what was done; ``--detach`` runs the runtime itself in the cluster and returns at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from shipyard.client import Run, list_runs
from shipyard.store.records import RunStatus, TaskStatus
from shipyard.testing import write_flow
from support.ray_cluster import RayCluster
from support.waiting import wait_for

LOSABLE = """
import os, time
from shipyard import FlowSpec, Parameter, step

class LosableFlow(FlowSpec):
    marker = Parameter("marker", default="")

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 3:  # the last one waits while the marker is there
            while self.marker and os.path.exists(self.marker):
                time.sleep(0.2)
        self.sq = self.input ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)

if __name__ == "__main__":
    LosableFlow()
"""


def shipyard(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
    )


def test_losing_the_whole_cluster_fails_the_run_in_bounded_time_and_it_resumes_elsewhere(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    from ray._private.utils import get_ray_address_file
    from ray.cluster_utils import Cluster

    marker = tmp_path / "hold"
    marker.touch()
    path = write_flow(LOSABLE, tmp_path)
    # a new cluster becomes "the current one" a bare ray.init() connects to: put it back
    current = Path(get_ray_address_file(None))
    previous = current.read_text() if current.exists() else None
    small = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "object_store_memory": 80 * 2**20,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
        },
    )
    address = small.address
    try:
        proc = subprocess.Popen(
            [sys.executable, str(path), "run", "--executor", "ray"]
            + ["--ray-address", address, "--marker", str(marker), "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ),
        )

        def third_running() -> bool:
            runs = list_runs("LosableFlow")
            if not runs:
                return False
            work = runs[0].tasks()
            done = [t for t in work if t.step_name == "work" and t.successful]
            running = [t for t in work if t.status is TaskStatus.RUNNING]
            return len(done) == 2 and len(running) == 1

        wait_for(third_running, timeout=60, what="two work tasks done, the third running")
        time.sleep(0.5)  # the third is in its loop on the node
        small.head_node.kill_gcs_server()  # the whole cluster goes: its GCS first
        lost_at = time.monotonic()
        small.shutdown()
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - lost_at
    finally:
        small.shutdown()
        if previous is not None:
            current.write_text(previous)
        else:  # a bare ray.init() would try the dead cluster, and hang
            current.unlink(missing_ok=True)
    assert proc.returncode == 1, out
    assert took < 30, f"the runtime took {took:.1f} s to notice"
    assert f"ClusterLost: the Ray cluster at {address} stopped answering" in out
    first = Run("LosableFlow/1")
    assert first.record.status is RunStatus.FAILED
    third = next(t for t in first["work"] if t.index == 2)
    assert third.attempts[-1].error["type"] == "ClusterLost", third.attempts[-1].error

    # ray -> local: the two finished work tasks (and start) are reused, the third re-runs
    marker.unlink()
    here = shipyard("resume", first.pathspec, "--executor", "local", "--quiet")
    assert here.returncode == 0, here.stdout + here.stderr
    resumed = Run("LosableFlow/2")
    assert resumed.successful and resumed.origin_run == first
    assert resumed["join"].task.data.total == 1 + 4 + 9
    reused = {t.index for t in resumed["work"] if t.origin_pathspec is not None}
    assert reused == {0, 1}
    assert resumed["start"].task.origin_pathspec is not None
    redone = next(t for t in resumed["work"] if t.index == 2)
    assert redone.node is None  # ran here
    assert {t.node for t in resumed["work"] if t.index != 2} != {None}  # ran on the lost one

    # and on another cluster (the session's), from the same origin, detached this time
    there = shipyard(
        "resume", first.pathspec, "--executor", "ray", "--ray-address", ray_cluster.address,
        "--detach",
    )  # fmt: skip
    assert there.returncode == 0, there.stdout + there.stderr
    assert there.stdout.startswith("LosableFlow/3 runs in the Ray cluster"), there.stdout
    wait_for(lambda: Run("LosableFlow/3").finished, what="the detached resume", timeout=90)
    again = Run("LosableFlow/3")
    assert again.successful and again["join"].task.data.total == 14
    assert again.origin_run == first
    assert {t.index for t in again["work"] if t.origin_pathspec is not None} == {0, 1}
    node = next(t for t in again["work"] if t.index == 2).node
    assert node is not None and node.id in ray_cluster.node_ids.values()


SLEEPY = """
import time
from shipyard import FlowSpec, Parameter, step

class DetachedFlow(FlowSpec):
    n = Parameter("n", default=3)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        time.sleep(1.5)
        print("working on", self.input)
        self.sq = self.input ** 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)

if __name__ == "__main__":
    DetachedFlow()
"""


def test_a_detached_run_goes_on_in_the_cluster_after_the_submitter_exits(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    path = write_flow(SLEEPY, tmp_path)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(path), "run", "--executor", "ray"]
        + ["--ray-address", ray_cluster.address, "--detach", "--n", "4"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("DetachedFlow/1 runs in the Ray cluster at"), out.stdout
    run = Run("DetachedFlow/1")
    # the submitter is gone; the run is not finished (four 1.5 s tasks on two 1-CPU nodes)
    assert run.record.status is RunStatus.RUNNING, time.monotonic() - started
    listed = shipyard("runs", "--flow", "DetachedFlow")
    assert "DetachedFlow/1" in listed.stdout and "running" in listed.stdout, listed.stdout
    wait_for(lambda: Run("DetachedFlow/1").finished, what="the detached run to end", timeout=90)
    run = Run("DetachedFlow/1")
    assert run.successful, [t.exception for t in run.tasks()]
    assert run["join"].task.data.total == 0 + 1 + 4 + 9
    assert run.parameters == {"n": 4}
    assert set(n.id for n in run.nodes()) <= set(ray_cluster.node_ids.values())
    logs = shipyard("logs", f"{run.pathspec}/work")
    assert logs.returncode == 0, logs.stderr
    assert sum("working on" in line for line in logs.stdout.splitlines()) == 4
    shown = shipyard("show", run.pathspec)
    assert "succeeded" in shown.stdout and "nodes" in shown.stdout, shown.stdout
    # the detached actor ended with its run: nothing is left in the cluster
    import ray

    ray.init(address=ray_cluster.address, log_to_driver=False)
    try:

        def no_actor_left() -> bool:
            named = ray.util.list_named_actors(all_namespaces=True)
            return not [a for a in named if a["name"].startswith("shipyard-run-")]

        wait_for(no_actor_left, what="the detached actor to end", timeout=30)
    finally:
        ray.shutdown()
