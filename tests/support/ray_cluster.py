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
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

OBJECT_STORE_BYTES = 100 * 2**20


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

    common = {
        "num_cpus": 1,
        "object_store_memory": OBJECT_STORE_BYTES,
        "node_ip_address": "127.0.0.1",
    }
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**common, "resources": {"node_a": 1}, "include_dashboard": False},
    )
    try:
        cluster.add_node(**common, resources={"node_b": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        node_ids = {
            name: node["NodeID"]
            for node in ray.nodes()
            for name in ("node_a", "node_b")
            if name in node["Resources"]
        }
        ray.shutdown()
        yield RayCluster(cluster.address, node_ids)
    finally:
        try:
            ray.shutdown()
            cluster.shutdown()
        finally:
            _kill_descendants()
