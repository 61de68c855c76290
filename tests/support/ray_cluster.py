"""One local two-node Ray cluster per pytest session, for the tests in ``tests/ray``.

Ray is only ever started inside a loopback-only network namespace: ``tests/ray`` is run by
``tests/flow/test_ray_suite.py`` under ``unshare -n`` (with ``SHIPYARD_RAY_NETNS=1``), and
the fixture refuses to start Ray unless the cloud metadata address is unreachable at once.
Both nodes are on 127.0.0.1 with the dashboard and usage stats off, a 100 MB object store
each and a custom resource naming them (``node_a``, ``node_b``). At the end the cluster is
shut down and every process it left below this one is killed by pid.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

OBJECT_STORE_BYTES = 100 * 2**20
NODES = ("node_a", "node_b")


def metadata_probe_errno() -> int | None:
    """The errno of a connect to 169.254.169.254:80 (None: it connected)."""
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("169.254.169.254", 80))
        except OSError as exc:
            return exc.errno
    return None


@dataclass
class RayCluster:
    address: str
    node_ids: dict[str, str]  # "node_a" / "node_b" -> Ray node id
    cluster: Any = None  # ray.cluster_utils.Cluster: tests add and remove nodes of their own
    #: "node_a" / "node_b" -> the node's own cache of services' files (SHIPYARD_RAY_NODE_CACHE)
    node_caches: dict[str, Path] = field(default_factory=dict)


COMMON_NODE_ARGS = {
    "num_cpus": 1,
    "object_store_memory": OBJECT_STORE_BYTES,
    "node_ip_address": "127.0.0.1",
}


def _memory_cgroup() -> tuple[Path, str]:
    """This process's memory cgroup directory and its limit file (v1 or v2)."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/"), "memory.limit_in_bytes"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            return Path("/sys/fs/cgroup") / path.lstrip("/"), "memory.max"
    raise RuntimeError("no memory cgroup in /proc/self/cgroup")


@contextmanager
def extra_node(
    ray_cluster: RayCluster,
    resource: str,
    memory_limit: int | None = None,
    pythonpath: str | None = None,
) -> Iterator[tuple[Any, str]]:
    """A node of the test's own (the fixture's nodes stay as they are), with the custom
    resource ``resource``; yields (the node, its Ray id) and removes it at the end.

    ``memory_limit`` (bytes): the node's raylet, and so its workers, start inside a memory
    cgroup of that size made here (this process moves in to start it, and back out), so a
    task there that allocates more is killed by the kernel's OOM killer. ``pythonpath``:
    the node's workers import from there (e.g. another shipyard)."""
    cluster = ray_cluster.cluster
    group: Path | None = None
    saved = os.environ.get("PYTHONPATH")
    if pythonpath is not None:  # the raylet, and so its workers, inherit this process's
        os.environ["PYTHONPATH"] = pythonpath
    if memory_limit is None:
        try:
            node = cluster.add_node(**COMMON_NODE_ARGS, resources={resource: 1})
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
    else:
        parent, limit_file = _memory_cgroup()
        group = parent / f"shipyard-test-{os.getpid()}-{resource}"
        group.mkdir(exist_ok=True)
        (group / limit_file).write_text(str(memory_limit))
        (group / "cgroup.procs").write_text(str(os.getpid()))
        try:
            node = cluster.add_node(**COMMON_NODE_ARGS, resources={resource: 1})
        finally:
            (parent / "cgroup.procs").write_text(str(os.getpid()))
    try:
        cluster.wait_for_nodes()
        yield node, node.node_id
    finally:
        if node in cluster.list_all_nodes():
            cluster.remove_node(node, allow_graceful=False)
        if group is not None:
            _remove_cgroup(group)


def _remove_cgroup(group: Path) -> None:
    """rmdir once the node's processes left it (they are being killed)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            group.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _kill_descendants() -> None:
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=10)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    if os.environ.get("SHIPYARD_RAY_NETNS") != "1" or metadata_probe_errno() != errno.ENETUNREACH:
        pytest.fail(
            "Ray is only started inside a loopback-only network namespace: run tests/ray "
            "through tests/flow/test_ray_suite.py (unshare -n)"
        )
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    from ray.cluster_utils import Cluster

    import ray

    common = COMMON_NODE_ARGS
    # each node its own cache of services' code and blobs, as nodes without a shared
    # filesystem have (a service replica's node fetches them: shipyard.serve.ray_files)
    caches = {name: Path(tempfile.mkdtemp(prefix=f"sy-{name}-cache-")) for name in NODES}
    os.environ["SHIPYARD_RAY_NODE_CACHE"] = str(caches["node_a"])
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            **common,
            "resources": {"node_a": 1},
            "include_dashboard": False,
            # a node a test removes is known dead in ~5 s rather than 15 (each next run's
            # version check waits for every node the cluster still lists)
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 5},
        },
    )
    try:
        os.environ["SHIPYARD_RAY_NODE_CACHE"] = str(caches["node_b"])
        cluster.add_node(**common, resources={"node_b": 1})
        os.environ.pop("SHIPYARD_RAY_NODE_CACHE")
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        node_ids = {
            name: node["NodeID"]
            for node in ray.nodes()
            for name in NODES
            if name in node["Resources"]
        }
        ray.shutdown()
        yield RayCluster(cluster.address, node_ids, cluster, caches)
    finally:
        try:
            ray.shutdown()
            cluster.shutdown()
        finally:
            _kill_descendants()
            for cache in caches.values():
                shutil.rmtree(cache, ignore_errors=True)
