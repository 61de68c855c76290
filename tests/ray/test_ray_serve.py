"""Services on Ray Serve (``deploy --on ray``): the host stays the front door, Ray places the
replicas. One host for the module, on the session's two-node cluster."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from support.ray_cluster import RayCluster, extra_node
from support.ray_serve_hosts import (
    TREE,
    WEIGHTS,
    RayHost,
    register_tiny,
    wait_until,
    write_service,
)

#: the value of the probe's secret, in the host's environment only
SECRET = "s3cr3t-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def host(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayHost]:
    home = tmp_path_factory.mktemp("ray-serve") / "home"
    running = RayHost(home, ray_cluster.address, {"PROBE_SECRET_SOURCE": SECRET}).start()
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


@pytest.mark.timeout(300)  # Ray Serve starts an application in ~7 s, more on a busy machine
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


def _gcs_serve_values(address: str) -> list[bytes]:
    """Every value Ray Serve keeps in the cluster's GCS (its controller's checkpoints: the
    applications' configs and their deployments' init arguments)."""
    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_list

    import ray

    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    try:
        keys = _internal_kv_list(b"", namespace=b"serve")
        return [_internal_kv_get(key, namespace=b"serve") or b"" for key in keys]
    finally:
        ray.shutdown()


def _under_a_node_cache(path: str, ray_cluster: RayCluster) -> bool:
    return any(Path(path).is_relative_to(c) for c in ray_cluster.node_caches.values())


@pytest.mark.timeout(300)  # Ray Serve starts an application in ~7 s, more on a busy machine
def test_a_replica_on_ray_reads_only_what_a_local_worker_may(
    host: RayHost, service_file: Path, ray_cluster: RayCluster
) -> None:
    register_tiny(host.home)
    _deploy(host, service_file, "probe", "--secret", "PROBE_SECRET=env:PROBE_SECRET_SOURCE",
            "--model", "tiny", "--model", "tree")  # fmt: skip
    home = host.home
    # its pinned model's blob came to its node too (the worker reads the node's store)
    weights = hashlib.sha256(WEIGHTS).hexdigest()
    assert host.post("/probe/model", {}).json() == weights
    # and its file-artifact model's files, materialised in the node's cache
    tree = host.post("/probe/tree", {}).json()
    assert _under_a_node_cache(tree.pop(""), ray_cluster)
    assert tree == TREE
    # the admin token, the cache's private signing key and the metadata database
    secret_paths = [str(home / n) for n in ("admin.token", "cache.key", "meta.db")]
    assert all(Path(p).exists() for p in secret_paths)
    # the replica runs its node's copy of the code snapshot, not the host's
    host_code = next((home / "code").rglob("echo_service.py"))
    own_code = host.post("/probe/source", {}).json()
    assert _under_a_node_cache(own_code, ray_cluster), own_code
    assert Path(own_code).parent.name == host_code.parent.name  # the same snapshot's key
    answer = host.post("/probe/read", {"paths": [*secret_paths, str(host_code), own_code]}).json()
    for path in [*secret_paths, str(host_code)]:
        assert not answer[path].startswith("read:"), f"a replica on Ray read {path}"
    assert answer[own_code] == "read:" + host_code.read_text()
    public = host.post("/probe/read", {"paths": [str(home / "cache.pub")]}).json()
    assert not public[str(home / "cache.pub")].startswith("read:")  # the host's home is hidden
    environment = host.post("/probe/environment", {}).json()
    node_pub = Path(environment["SHIPYARD_HOME"]) / "cache.pub"
    assert host.post("/probe/read", {"paths": [str(node_pub)]}).json()[str(node_pub)] == (
        "read:" + (home / "cache.pub").read_text()
    )
    token = (home / "admin.token").read_text().strip()
    assert "SHIPYARD_DB_URL" not in environment
    assert "SHIPYARD_WORKER_TOKEN" not in environment
    assert not [k for k, v in environment.items() if token in v]
    assert _under_a_node_cache(environment["SHIPYARD_HOME"], ray_cluster)
    assert environment["SHIPYARD_STORE_URL"].startswith("file://")
    assert _under_a_node_cache(environment["SHIPYARD_STORE_URL"][len("file://") :], ray_cluster)
    # the user's code sees its secret; the configs Ray Serve keeps in the GCS do not hold it
    assert environment["PROBE_SECRET"] == SECRET
    stored = _gcs_serve_values(ray_cluster.address)
    code_key = host_code.parent.name
    assert any(code_key.encode() in value for value in stored)  # the probe's config is there
    assert not [value for value in stored if SECRET.encode() in value]

    # with neither the host's snapshot nor any node's copy on disk, the replica Ray starts
    # in place of a killed one fetches the code from the cluster (and its secret again)
    moved = host_code.parent.with_name(code_key + ".away")
    host_code.parent.rename(moved)
    try:
        for cache in ray_cluster.node_caches.values():
            for entry in cache.iterdir():
                shutil.rmtree(entry)
        (victim,) = {r["pid"] for r in host.deployment("probe")["live"]}
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: [r for r in host.deployment("probe")["live"] if r["pid"] != victim],
            "a replacement replica",
        )
        again = host.post("/probe/source", {}).json()
        assert _under_a_node_cache(again, ray_cluster) and Path(again).is_file()
        assert host.post("/probe/environment", {}).json()["PROBE_SECRET"] == SECRET
        assert host.post("/probe/model", {}).json() == weights
        tree = host.post("/probe/tree", {}).json()
        assert _under_a_node_cache(tree.pop(""), ray_cluster) and tree == TREE
    finally:
        moved.rename(host_code.parent)

    # a restarted host takes up the application as it was: the same replica answers
    before = host.answering_pids("probe", 3)
    host.stop()
    host.start()
    wait_until(lambda: httpx.get(host.url + "/readyz", timeout=10).status_code == 200, "restore")
    assert host.answering_pids("probe", 3) == before
    host.cli("undeploy", "probe")


@pytest.mark.timeout(300)  # Ray Serve starts an application in ~7 s, more on a busy machine
def test_ray_autoscales_and_a_redeploy_under_load_fails_no_request(
    host: RayHost, service_file: Path, tmp_path: Path
) -> None:
    _deploy(host, service_file, "steady", "--min-replicas", "1", "--max-replicas", "2")
    out = tmp_path / "report"
    load = subprocess.Popen(
        [
            sys.executable, "-m", "shipyard", "loadtest", "steady/slow",
            "--json", '{"seconds": 0.2}',
            "--concurrency", "4", "--duration", "120s", "--no-record", "--out", str(out),
            "--url", host.url,
        ],
        env=host.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # Ray's autoscaler, fed by the workers' own counts (the host calls them directly)
        wait_until(lambda: len(host.deployment("steady")["live"]) == 2, "a scale-up under load", 40)
        started = time.monotonic()
        _deploy(host, service_file, "steady", "--env", "ECHO_VERSION=2")
        print(f"redeploy took {time.monotonic() - started:.1f} s")
        time.sleep(1.0)
        started = time.monotonic()
        host.cli("rollback", "steady")
        print(f"rollback took {time.monotonic() - started:.1f} s")
        assert load.poll() is None, "the load test ended before the rollback did"
        time.sleep(2.0)  # the rolled-back version under load too
        load.send_signal(signal.SIGINT)  # stops sending, waits for the answers, reports
        output, _ = load.communicate(timeout=60)
    finally:
        if load.poll() is None:
            load.kill()
    summary = json.loads((out / "summary.json").read_text())
    # 4 connections of 0.2 s calls are ~20 requests/s; the load ran from before the scale-up
    # to 2 s after the rollback (checked above), whatever the redeploy's speed: at least ~8 s
    assert summary["requests"] >= 150, output
    assert summary["errors"] == 0, output
    assert host.deployment("steady")["current_version"] == 3
    assert host.post("/steady/echo", {"x": 1}).json()["version"] == "1"
    host.cli("undeploy", "steady")


def _logged(host: RayHost) -> list[int]:
    """The ``x`` of every record of service ``logged`` in the host's store."""
    from shipyard.features import read_serving_log

    frame = read_serving_log("logged", home=host.home)
    return sorted(int(facts["x"]) for facts in frame["facts"]) if len(frame) else []


@pytest.mark.timeout(300)  # Ray Serve starts an application in ~7 s, more on a busy machine
def test_a_replicas_serving_log_reaches_the_hosts_store_also_when_drained(
    host: RayHost, service_file: Path, ray_cluster: RayCluster
) -> None:
    _deploy(host, service_file, "logged", "--env", "LOG_MAX_AGE=1")
    for x in range(12):
        assert host.post("/logged/note", {"x": x}).json() == x
    # segments published while the replica runs (every second) are shipped on a timer
    wait_until(lambda: _logged(host) == list(range(12)), "the first records in the host's store")
    # v2 and v3 publish only when their worker stops (max_age 5 minutes): a redeploy and an
    # undeploy drain them, and the segment each publishes as it stops comes too
    _deploy(host, service_file, "logged", "--env", "ECHO_VERSION=2")
    for x in range(12, 24):
        assert host.post("/logged/note", {"x": x}).json() == x
    _deploy(host, service_file, "logged", "--env", "ECHO_VERSION=3")
    for x in range(24, 36):
        assert host.post("/logged/note", {"x": x}).json() == x
    host.cli("undeploy", "logged")
    wait_until(lambda: _logged(host) == list(range(36)), "every record in the host's store", 90)
    # a segment left on a node is one the host holds already (deleted at the next offer)
    held = {p.name for p in (host.home / "blobs" / "serving-logs" / "logged").iterdir()}
    for cache in ray_cluster.node_caches.values():
        on_node = cache / "blobs" / "serving-logs" / "logged"
        left = {p.name for p in on_node.iterdir()} if on_node.is_dir() else set()
        assert {n for n in left if not n.startswith(".")} <= held


def _slow_calls(host: RayHost, name: str, count: int, seconds: float) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        body = {"seconds": seconds}
        futures = [pool.submit(host.post, f"/{name}/slow", body, timeout=60) for _ in range(count)]
        return [f.result() for f in futures]


@pytest.mark.timeout(300)  # Ray Serve starts an application in ~7 s, more on a busy machine
def test_a_killed_replica_fails_only_its_requests_and_ray_replaces_it(
    host: RayHost, service_file: Path
) -> None:
    _deploy(host, service_file, "sturdy", "--min-replicas", "2")
    wait_until(lambda: len(host.deployment("sturdy")["live"]) == 2, "two replicas")
    pids = {r["pid"] for r in host.deployment("sturdy")["live"]}
    victim = min(pids)
    with ThreadPoolExecutor(1) as pool:
        calls = pool.submit(_slow_calls, host, "sturdy", 6, 3.0)
        time.sleep(1.0)  # the six calls are in flight, three on each replica
        os.kill(victim, signal.SIGKILL)
        answers = calls.result()
    failed = [a for a in answers if a.status_code != 200]
    assert {a.json() for a in answers if a.status_code == 200} == pids - {victim}
    assert len(failed) == 3, [a.text for a in answers]
    for answer in failed:
        error = answer.json()["error"]
        assert answer.status_code == 503 and error["type"] == "worker_crashed"
        assert "the worker was killed (SIGKILL" in error["message"], error
        assert "Ray node" in error["message"], error
    # Ray starts a replica in its place; the host connects to it
    wait_until(
        lambda: len({r["pid"] for r in host.deployment("sturdy")["live"]} - pids) == 1,
        "a replacement replica",
    )
    assert len(host.answering_pids("sturdy", 30)) == 2
    host.cli("undeploy", "sturdy")


@pytest.mark.timeout(300)  # Ray Serve starts an application in ~7 s, more on a busy machine
def test_a_node_removed_fails_only_the_requests_it_ran(
    host: RayHost, service_file: Path, ray_cluster: RayCluster
) -> None:
    with extra_node(ray_cluster, "serve_pool"), extra_node(ray_cluster, "serve_pool") as second:
        _deploy(host, service_file, "spread", "--min-replicas", "2", "--replica-resource",
                "serve_pool=1")  # fmt: skip
        wait_until(lambda: len(host.deployment("spread")["live"]) == 2, "two replicas")
        pids = {r["pid"] for r in host.deployment("spread")["live"]}
        with ThreadPoolExecutor(1) as pool:
            calls = pool.submit(_slow_calls, host, "spread", 4, 3.0)
            time.sleep(1.0)
            ray_cluster.cluster.remove_node(second[0], allow_graceful=False)
            answers = calls.result()
        failed = [a for a in answers if a.status_code != 200]
        assert len(failed) == 2, [a.text for a in answers]
        for answer in failed:
            error = answer.json()["error"]
            assert answer.status_code == 503 and error["type"] == "worker_crashed", error
            assert "went away" in error["message"] or "killed" in error["message"], error
        survivor = {a.json() for a in answers if a.status_code == 200}
        assert len(survivor) == 1 and survivor < pids
        # the host sends everything to the replica left (Ray has no node to put another on)
        wait_until(lambda: len(host.deployment("spread")["live"]) == 1, "the lost replica gone")
        assert host.answering_pids("spread", 20) == survivor
        host.cli("undeploy", "spread")
