"""The host end to end: a real ``shipyard serve`` process, real worker processes, real HTTP."""

from __future__ import annotations

import concurrent.futures
import json
import os
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hosts import HostProcess

SERVICE = """
import os, time
from pydantic import BaseModel
from shipyard.serve import Service, endpoint


class Item(BaseModel):
    name: str
    qty: int


class Demo(Service):
    def load(self):
        if os.environ.get("FAIL_LOAD"):
            raise RuntimeError("the model file is missing")
        self.version = VERSION

    @endpoint
    def echo(self, text: str, times: int = 1) -> dict:
        return {"text": text * times, "version": self.version, "pid": os.getpid()}

    @endpoint
    def total(self, items: list[Item]) -> int:
        return sum(i.qty for i in items)

    @endpoint
    def slow(self, ms: int = 200) -> int:
        time.sleep(ms / 1000)
        return self.version

    @endpoint(timeout=1.0)
    def hang(self) -> int:
        time.sleep(30)
        return 0

    @endpoint
    def boom(self) -> int:
        raise ValueError("secret internals")

    @endpoint
    def die(self) -> int:
        os.kill(os.getpid(), signal.SIGKILL)
        return 0

    @endpoint
    def env(self, name: str) -> str | None:
        return os.environ.get(name)
"""


def write_service(directory: Path, version: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "demo_service.py"
    path.write_text("import signal\nVERSION = " + str(version) + "\n" + textwrap.dedent(SERVICE))
    return path


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    home = tmp_path_factory.mktemp("host")
    process = HostProcess(home, env={"HOST_SECRET": "do-not-leak"}).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def demo(host: HostProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = write_service(tmp_path_factory.mktemp("svc"), 1)
    out = host.deploy(f"{path}:Demo", "demo", "--replicas", "2")
    assert "demo" in out.stdout
    return path


def test_requests_are_answered(host: HostProcess, demo: Path) -> None:
    r = host.post("/demo/echo", {"text": "ab", "times": 2})
    assert r.status_code == 200 and r.json()["text"] == "abab"
    r = host.post("/demo/total", {"items": [{"name": "a", "qty": 2}, {"name": "b", "qty": 3}]})
    assert r.status_code == 200 and r.json() == 5
    # two replicas share the load
    pids = {host.post("/demo/echo", {"text": "x"}).json()["pid"] for _ in range(20)}
    assert len(pids) == 2


def test_openapi_and_docs(host: HostProcess, demo: Path) -> None:
    spec = httpx.get(host.url + "/demo/openapi.json").json()
    assert "/demo/echo" in spec["paths"] and spec["openapi"].startswith("3.")
    page = httpx.get(host.url + "/demo/docs")
    assert page.status_code == 200 and "/demo/total" in page.text and "<script src" not in page.text


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"),
    [
        ("/demo/total", {"items": [{"name": "a", "qty": "many"}]}, 422, "validation_error"),
        ("/demo/echo", {}, 422, "validation_error"),
        ("/demo/echo", {"text": "a", "extra": 1}, 422, "validation_error"),
        ("/demo/nope", {}, 404, "not_found"),
        ("/nobody/echo", {}, 404, "not_found"),
        ("/demo/boom", {}, 500, "internal_error"),
    ],
)
def test_bad_input_gets_a_clear_error(
    host: HostProcess, demo: Path, path: str, body: dict, status: int, kind: str
) -> None:
    r = host.post(path, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["type"] == kind and error["message"]
    assert "Traceback" not in r.text and "secret internals" not in r.text
    if status == 500:
        assert len(error["error_id"]) >= 8
    if path == "/demo/total":
        assert error["field"] == "items.0.qty"


def test_invalid_json_and_oversized_bodies(host: HostProcess, demo: Path) -> None:
    r = httpx.post(
        host.url + "/demo/echo", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_json"
    r = httpx.post(host.url + "/demo/echo", content=b"x" * (17 << 20))
    assert r.status_code == 413


def test_timeout_retires_the_worker(host: HostProcess, demo: Path) -> None:
    started = time.monotonic()
    r = host.post("/demo/hang", {})
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 60
    while len(host.worker_pids("demo")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(host.worker_pids("demo")) == 2
    assert host.post("/demo/echo", {"text": "ok"}).status_code == 200


def test_a_crashing_worker_fails_only_its_requests_and_comes_back(
    host: HostProcess, demo: Path
) -> None:
    before = set(host.worker_pids("demo"))
    r = host.post("/demo/die", {})
    assert r.status_code == 503 and r.json()["error"]["type"] == "worker_crashed"
    assert "SIGKILL" in r.json()["error"]["message"]
    assert r.headers["retry-after"]
    # the other replica keeps answering while the dead one restarts
    assert all(host.post("/demo/echo", {"text": "x"}).status_code == 200 for _ in range(10))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = set(host.worker_pids("demo"))
        if len(pids) == 2 and pids != before:
            break
        time.sleep(0.2)
    assert len(pids) == 2 and pids != before
    metrics = httpx.get(host.url + "/metrics").text
    assert 'shipyard_worker_restarts_total{service="demo"}' in metrics


def test_workers_get_an_allow_listed_environment(host: HostProcess, demo: Path) -> None:
    assert host.post("/demo/env", {"name": "HOST_SECRET"}).json() is None
    assert host.post("/demo/env", {"name": "SHIPYARD_HOME"}).json() == str(host.home)


def test_zero_failed_requests_during_a_redeploy_under_load(
    host: HostProcess, tmp_path: Path
) -> None:
    old, new = write_service(tmp_path / "v1", 1), write_service(tmp_path / "v2", 2)
    host.deploy(f"{old}:Demo", "rolling", "--replicas", "2")
    stop = time.monotonic() + 60
    results: list[tuple[int, object]] = []

    def client() -> None:
        with httpx.Client(base_url=host.url, timeout=30) as c:
            while time.monotonic() < stop and not done:
                r = c.post("/rolling/slow", json={"ms": 200})
                results.append((r.status_code, r.json()))

    def wait_for(what: str, seen: Callable[[], bool]) -> None:
        while not seen():
            assert time.monotonic() < stop, f"no {what} within the deadline: {results[-5:]}"
            time.sleep(0.05)

    done = False
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client) for _ in range(8)]
        try:
            # the clients are running: requests are in flight on the old replicas
            wait_for("v1 answers", lambda: len(results) >= 8)
            host.deploy(f"{new}:Demo", "rolling", "--replicas", "2")
            wait_for("v2 answers", lambda: sum(body == 2 for _, body in results) >= 8)
        finally:
            done = True
            for f in futures:
                f.result()
    codes = [code for code, _ in results]
    assert codes and all(code == 200 for code in codes), [r for r in results if r[0] != 200][:5]
    versions = [body for _, body in results]
    assert 1 in versions and 2 in versions  # traffic moved from v1 to v2 without a failure
    assert host.post("/rolling/slow", {"ms": 1}).json() == 2


def test_a_failing_load_keeps_the_old_version(
    host: HostProcess, demo: Path, tmp_path: Path
) -> None:
    broken = write_service(tmp_path / "broken", 3)
    out = host.cli(
        "deploy", f"{broken}:Demo", "--name", "demo", "--env", "FAIL_LOAD=1", check=False
    )
    assert out.returncode == 1
    assert (
        "the model file is missing" in out.stderr and "previous version keeps serving" in out.stderr
    )
    assert host.post("/demo/echo", {"text": "still"}).status_code == 200
    shown = host.cli("deployments", "demo").stdout
    assert "failed" in shown and "the model file is missing" in shown


def test_admin_api_needs_the_token_and_json(host: HostProcess, demo: Path) -> None:
    assert httpx.get(host.url + "/api/v1/deployments").status_code == 401
    bad = {"Authorization": "Bearer sy_nope"}
    assert httpx.get(host.url + "/api/v1/deployments", headers=bad).status_code == 401
    form = httpx.post(
        host.url + "/api/v1/deployments",
        headers=host.admin,
        content=b"name=x",
    )
    assert form.status_code == 415
    evil = httpx.post(
        host.url + "/api/v1/deployments/demo/scale",
        json={"replicas": 1},
        headers={**host.admin, "Origin": "http://evil.example"},
    )
    assert evil.status_code == 403
    rebound = httpx.get(
        host.url + "/api/v1/deployments", headers={**host.admin, "Host": "attacker.example"}
    )
    assert rebound.status_code == 403


def test_scale_rollback_restart_restore_and_the_audit_log(
    host: HostProcess, tmp_path: Path
) -> None:
    from shipyard.registry import Registry

    for version in (1, 2):
        host.deploy(f"{write_service(tmp_path / f'v{version}', version)}:Demo", "scaled")
    host.cli("scale", "scaled", "3")
    assert len(host.worker_pids("scaled")) == 3
    assert host.post("/scaled/slow", {"ms": 1}).json() == 2
    host.cli("rollback", "scaled")
    assert host.post("/scaled/slow", {"ms": 1}).json() == 1
    # a restarted host serves exactly what was deployed, at the same replica count
    host.stop()
    host.start()
    host.wait_ready()  # the deployments come back in the background
    assert host.post("/scaled/slow", {"ms": 1}).json() == 1
    assert len(host.worker_pids("scaled")) == 3
    os.environ["SHIPYARD_HOME"] = str(host.home)
    try:
        entries = Registry().audit(limit=None)
    finally:
        os.environ.pop("SHIPYARD_HOME", None)
    actions = {(e.action, (e.detail or {}).get("service")) for e in entries}
    assert {("deploy", "scaled"), ("scale", "scaled"), ("rollback", "scaled")} <= actions


def test_health_ready_and_metrics(host: HostProcess, demo: Path) -> None:
    assert httpx.get(host.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(host.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["services"]["demo"]["ready_replicas"] >= 1
    host.post("/demo/echo", {"text": "m"})
    metrics = httpx.get(host.url + "/metrics").text
    assert 'shipyard_requests_total{code="200",endpoint="echo",service="demo"}' in metrics
    assert "shipyard_request_seconds_bucket" in metrics
    access = [
        json.loads(line)
        for line in host.log.read_text().splitlines()
        if line.startswith('{"ts"') and '"service": "demo"' in line
    ]
    assert any(a["endpoint"] == "echo" and a["status"] == 200 and a["ms"] > 0 for a in access)


PINNED = """
from shipyard import Model
from shipyard.serve import Service, endpoint


class Pinned(Service):
    def load(self):
        self.spec = Model("tiny@prod").resolve()

    @endpoint
    def which(self) -> str:
        return self.spec
"""


def test_an_alias_used_in_load_is_pinned_at_deploy(host: HostProcess, tmp_path: Path) -> None:
    from shipyard.registry import Registry
    from shipyard.testing import run_flow

    os.environ["SHIPYARD_HOME"] = str(host.home)
    try:
        flow = (
            "from shipyard import FlowSpec, step, current\n"
            "class TinyFlow(FlowSpec):\n"
            "    @step\n    def start(self):\n"
            "        current.register_model('tiny', {'w': 1})\n        self.next(self.end)\n"
            "    @step\n    def end(self):\n        pass\n"
        )
        run_flow(flow)
        run_flow(flow)
        registry = Registry()
        registry.set_alias("tiny", 1, "prod")
        path = tmp_path / "pinned_service.py"
        path.write_text(PINNED)
        host.deploy(f"{path}:Pinned", "pinned")
        assert host.post("/pinned/which", {}).json() == "tiny:1"
        registry.set_alias("tiny", 2, "prod")  # moving the alias does not move the service
        host.cli("scale", "pinned", "2")
        answers = {host.post("/pinned/which", {}).json() for _ in range(6)}
        assert answers == {"tiny:1"}
        shown = host.cli("deployments", "pinned").stdout
        assert "tiny@prod=tiny:1" in shown
    finally:
        os.environ.pop("SHIPYARD_HOME", None)


CACHED = """
from shipyard import cache
from shipyard.serve import Service, endpoint


class Cached(Service):
    def load(self):
        self.rows = cache.reader("rows")

    @endpoint
    def row(self, key: str) -> list[int] | None:
        return self.rows.get(key)
"""


def test_worker_metrics_reach_the_host(host: HostProcess, tmp_path: Path) -> None:
    """A service's cache reads happen in its worker; the host's /metrics shows them."""
    from shipyard import cache

    os.environ["SHIPYARD_HOME"] = str(host.home)
    try:
        with cache.writer("rows") as w:
            w.put("a", [1, 2, 3])
    finally:
        os.environ.pop("SHIPYARD_HOME", None)
    path = tmp_path / "cached_service.py"
    path.write_text(CACHED)
    host.deploy(f"{path}:Cached", "cached")
    assert host.post("/cached/row", {"key": "a"}).json() == [1, 2, 3]
    assert host.post("/cached/row", {"key": "zz"}).json() is None
    metrics = httpx.get(host.url + "/metrics").text
    assert 'shipyard_cache_hits_total{namespace="rows"}' in metrics
    assert 'shipyard_cache_misses_total{namespace="rows"}' in metrics


def test_keys_close_service_calls(tmp_path: Path) -> None:
    # a host of its own: once an invoke key exists, calls without one are refused
    own = HostProcess(tmp_path / "home").start()
    try:
        own.deploy(f"{write_service(tmp_path / 'svc', 1)}:Demo", "demo")
        assert own.post("/demo/echo", {"text": "x"}).status_code == 200  # open on loopback
        out = own.cli("keys", "create", "--scope", "invoke:demo", remote=False)
        key = out.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 10  # the host re-reads whether invoke keys exist every ~5 s
        while own.post("/demo/echo", {"text": "x"}).status_code != 401:
            assert time.monotonic() < deadline
            time.sleep(0.25)
        ok = own.post("/demo/echo", {"text": "x"}, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        listed = own.cli("keys", "list", remote=False).stdout
        assert "invoke:demo" in listed and key not in listed
    finally:
        own.stop()


def test_a_rollback_from_the_ui_reaches_the_workers(host: HostProcess, tmp_path: Path) -> None:
    # The UI's button goes through the admin API to real workers (tests/ui checks its refusals).
    for version in (1, 2):
        path = write_service(tmp_path / f"v{version}", version)
        host.deploy(f"{path}:Demo", "uidemo")
    out = host.cli("keys", "create", "--scope", "admin", "--name", "ops", remote=False)
    key = out.stdout.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {key}"}  # an admin key may call any service
    assert host.post("/uidemo/slow", {"ms": 1}, headers=auth).json() == 2
    with httpx.Client(base_url=host.url, timeout=60) as ui:
        signed = ui.post("/ui/signin", data={"key": key, "next": "/ui/deployments"})
        assert signed.status_code in (200, 303), signed.text
        assert "Roll back to version 1" in ui.get("/ui/deployments/uidemo").text
        done = ui.post(
            "/ui/actions/deployments/uidemo/rollback", json={}, headers={"Origin": host.url}
        )
        assert done.status_code == 200, done.text
    assert host.post("/uidemo/slow", {"ms": 1}, headers=auth).json() == 1
