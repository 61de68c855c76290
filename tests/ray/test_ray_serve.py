"""Services on Ray Serve (``deploy --on ray``): the host stays the front door, Ray places the
replicas. One host for the module, on the session's two-node cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ray_cluster import RayCluster
from support.ray_serve_hosts import RayHost, wait_until, write_service


@pytest.fixture(scope="module")
def host(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHost]:
    home = tmp_path_factory.mktemp("ray-serve") / "home"
    running = RayHost(home, ray_cluster.address).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def service_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_service(tmp_path_factory.mktemp("echo"))


def _deploy(host: RayHost, service_file: Path, name: str, *extra: str) -> None:
    host.cli(
        "deploy",
        f"{service_file}:Echo",
        "--name",
        name,
        "--on",
        "ray",
        "--replica-cpus",
        "0.1",
        *extra,
    )


def test_deploy_scale_and_rollback_on_ray(host: RayHost, service_file: Path) -> None:
    _deploy(host, service_file, "echo")
    described = host.deployment("echo")
    assert described["versions"][-1]["on"] == "ray"
    assert [r["ready"] for r in described["live"]] == [True]
    # the request goes through the host (validation there and in the worker) to the replica
    first = host.answering_pids("echo", 5)
    assert len(first) == 1
    assert first != {host.proc.pid if host.proc else 0}
    bad = host.post("/echo/echo", {"x": "not a number"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "x"

    # scale maps to Ray's min/max replicas: two replicas, both answering
    host.cli("scale", "echo", "2")
    wait_until(lambda: len(host.deployment("echo")["live"]) == 2, "a second replica")
    assert len(host.answering_pids("echo", 30)) == 2
    host.cli("scale", "echo", "1")
    wait_until(lambda: len(host.deployment("echo")["live"]) == 1, "one replica again")
    assert len(host.answering_pids("echo", 10)) == 1

    # a redeploy is a new Ray Serve application; rollback goes back to v1's code and env
    _deploy(host, service_file, "echo", "--env", "ECHO_VERSION=2")
    assert host.post("/echo/echo", {"x": 1}).json()["version"] == "2"
    assert host.deployment("echo")["current_version"] == 2
    host.cli("rollback", "echo")
    assert host.post("/echo/echo", {"x": 1}).json()["version"] == "1"
    described = host.deployment("echo")
    assert described["current_version"] == 3 and described["versions"][-1]["on"] == "ray"

    # a version whose load() fails leaves the one serving in place, and says why
    out = host.cli(
        "deploy",
        f"{service_file}:Echo",
        "--name",
        "echo",
        "--on",
        "ray",
        "--replica-cpus",
        "0.1",
        "--env",
        "ECHO_FAIL=1",
        check=False,
    )
    assert out.returncode != 0
    assert "load refused on purpose" in out.stderr + out.stdout
    assert host.post("/echo/echo", {"x": 1}).json()["version"] == "1"
    host.cli("undeploy", "echo")


def test_a_replica_on_ray_reads_only_what_a_local_worker_may(
    host: RayHost, service_file: Path
) -> None:
    _deploy(host, service_file, "probe")
    home = host.home
    secret_paths = [str(home / "admin.token"), str(home / "meta.db")]
    own_code = next((home / "code").rglob("echo_service.py"))
    answer = host.post("/probe/read", {"paths": [*secret_paths, str(own_code)]}).json()
    for path in secret_paths:
        assert not answer[path].startswith("read:"), f"a replica on Ray read {path}"
    assert answer[str(own_code)].startswith("read:")
    environment = host.post("/probe/environment", {}).json()
    token = (home / "admin.token").read_text().strip()
    assert "SHIPYARD_DB_URL" not in environment
    assert "SHIPYARD_WORKER_TOKEN" not in environment
    assert not [k for k, v in environment.items() if token in v]
    assert environment["SHIPYARD_HOME"] == str(home)
    host.cli("undeploy", "probe")
