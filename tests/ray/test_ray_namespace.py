"""The namespace tests/ray runs in is real: nothing beyond loopback is reachable."""

from __future__ import annotations

import errno

from support.ray_cluster import RayCluster, metadata_probe_errno


def test_the_cloud_metadata_address_is_unreachable_at_once() -> None:
    assert metadata_probe_errno() == errno.ENETUNREACH


def test_every_ray_process_and_connection_stays_on_loopback(ray_cluster: RayCluster) -> None:
    import psutil

    import ray

    ray.init(address=ray_cluster.address, log_to_driver=False)
    try:
        ray.get(ray.remote(lambda: 1).remote())  # a worker up, talking to its raylet
        addresses = {node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
        seen: list[tuple[str, str, str]] = []
        for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
            try:
                connections = proc.net_connections(kind="inet")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            for conn in connections:
                remote = conn.raddr.ip if conn.raddr else ""
                seen.append((proc.name(), conn.laddr.ip, remote))
    finally:
        ray.shutdown()
    assert addresses == {"127.0.0.1"}
    assert len(seen) > 10  # the GCS, raylets and workers were all looked at
    loopback = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
    # not even a listener on every interface (0.0.0.0, ::), which a real machine would expose
    beyond = [c for c in seen if c[1] not in loopback or c[2] not in loopback | {""}]
    assert not beyond, beyond
