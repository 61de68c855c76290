"""A schedule with ``executor: ray`` starts its run through the spawner's forked path (the
spawner forks the launcher, the launcher forks ``shipyard run --executor ray``): the run's
steps execute on the cluster's nodes. Sound because neither the spawner nor the launcher
imports Ray or starts a thread: Ray is initialised in the forked run only."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipyard.client import Run
from shipyard.config import settings
from shipyard.schedules.manage import create, trigger_now
from shipyard.schedules.scheduler import Scheduler, Spawner
from shipyard.schedules.store import ScheduleStore
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore
from support.ray_cluster import RayCluster

FLOW = """
from shipyard import FlowSpec, schedule, step


@schedule(cron="0 6 * * *", executor="ray")
class OnRayFlow(FlowSpec):
    @step
    def start(self):
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_ray_schedule_runs_on_the_cluster_from_the_forked_spawner(
    tmp_path: Path, ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_RAY_ADDRESS", ray_cluster.address)
    flow = tmp_path / "on_ray_flow.py"
    flow.write_text(FLOW)
    with MetaStore.open() as meta:
        store = ScheduleStore(meta)
        blobs = open_blob_store(settings().store_url)
        create(store, flow, name=None, user="t", now=datetime.now(UTC), blobs=blobs)
        assert store.get("OnRayFlow").current.policies.executor == "ray"
        starter = Spawner(store)
        try:
            fire_id = trigger_now(store, "OnRayFlow", {}, user="t", now=datetime.now(UTC))
            assert Scheduler(store, starter=starter).tick().started == [fire_id]
            deadline = time.monotonic() + 120
            while store.fire(fire_id).pid is None:
                assert time.monotonic() < deadline, "the launcher did not start in 120 s"
                time.sleep(0.05)
            launcher = store.fire(fire_id).pid
            assert launcher is not None and starter.server is not None
            # forked by the spawner (it watches its run until the run ends)
            assert _ppid(launcher) == starter.server.pid
            while store.fire(fire_id).exit_code is None:
                assert time.monotonic() < deadline, "the scheduled Ray run did not end in 120 s"
                time.sleep(0.2)
            fire = store.fire(fire_id)
        finally:
            starter.close()
    logs = "".join(p.read_text() for p in (settings().home / "logs").rglob("*.log"))
    assert fire.exit_code == 0, logs[-4000:]
    run = Run(f"OnRayFlow/{fire.run_id}")
    assert run.successful
    assert run["start"].task.data.node in ray_cluster.node_ids.values()
    assert run.trigger is not None and run.trigger["type"] == "manual"
