"""The host as an ASGI app, in process (no workers): service calls answered before the route
table, apps mounted under reserved names with their lifespans run inside the host's, the
gateway mounted as it serves alone, and an admin API that tells its own failure from the
caller's mistake."""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from shipyard._app import host_app
from shipyard.serve.errors import ServeError
from shipyard.serve.host import Host
from shipyard.serve.lifespans import LifespanFailed
from shipyard.store import context as _stores

URL = "http://127.0.0.1:8000"
ROUTES = """
routes:
  - name: chat
    type: chat
    upstream: {provider: openai, base_url: 'http://127.0.0.1:9/v1', model: tiny}
"""
MORE = """
  - name: more
    type: chat
    upstream: {provider: openai, base_url: 'http://127.0.0.1:9/v1', model: tiny}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    _stores.reset()
    yield tmp_path / "home"
    _stores.reset()


@pytest.fixture
def host(home: Path) -> Iterator[Host]:
    made = Host.from_settings()
    yield made
    for close in reversed(made.on_close):
        close()


def _client(app: Any) -> TestClient:
    return TestClient(app, client=("127.0.0.1", 1), base_url=URL, raise_server_exceptions=False)


def _lifespan_app(events: list[str], *, fail: bool = False) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if fail:
            raise RuntimeError("the mounted app cannot start")
        events.append("up")
        yield
        events.append("down")

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse(f"hello from {request.url.path}")

    return Starlette(routes=[Route("/hello", hello)], lifespan=lifespan)


# --- the hot path ---------------------------------------------------------------------------
def test_a_service_call_is_answered_before_the_route_table(host: Host) -> None:
    client = _client(host)
    table = host.app

    async def no_routing(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError(f"{scope['method']} {scope['path']} went through the route table")

    host.app = no_routing  # type: ignore[assignment]
    try:
        answer = client.post("/nosuch/echo", json={})
    finally:
        host.app = table
    assert answer.status_code == 404
    assert answer.json() == {"error": {"type": "not_found", "message": "no service named 'nosuch'"}}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/healthz/probe"),  # a reserved name is never a service
        ("POST", "/ui/signout"),
        ("POST", "/ranker/home/extra"),
        ("POST", "/ranker"),
        ("GET", "/ranker/home"),
        ("PUT", "/ranker/home"),
    ],
)
def test_everything_else_goes_through_the_route_table(host: Host, method: str, path: str) -> None:
    routed: list[str] = []

    async def table(scope: Any, receive: Any, send: Any) -> None:
        routed.append(f"{scope['method']} {scope['path']}")
        await PlainTextResponse("routed", 418)(scope, receive, send)

    host.app = table  # type: ignore[assignment]
    assert _client(host).request(method, path).status_code == 418
    assert routed == [f"{method} {path}"]


def test_the_route_table_answers_what_is_no_call(host: Host) -> None:
    client = _client(host)
    wrong_method = client.get("/nosuch/echo")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "method_not_allowed"
    assert client.get("/nosuch/docs").json()["error"]["message"] == "no service named 'nosuch'"
    assert client.get("/healthz").json() == {"status": "ok"}


# --- mounts and their lifespans ------------------------------------------------------------
def test_apps_are_mounted_only_under_reserved_names(host: Host) -> None:
    with pytest.raises(ServeError, match="reserved names"):
        host.mount("/extras", _lifespan_app([]))  # POST /extras/x would be a service call
    host.mount("/static", _lifespan_app([]))
    assert _client(host).get("/static/hello").text == "hello from /static/hello"


def test_a_mounted_app_lives_inside_the_host(host: Host) -> None:
    events: list[str] = []
    host.mount("/static", _lifespan_app(events))
    with _client(host) as client:
        assert events == ["up"] and host.started
        assert client.get("/static/hello").status_code == 200
        with pytest.raises(ServeError, match="has started"):
            host.mount("/docs", _lifespan_app([]))
    assert events == ["up", "down"]


def test_a_mounted_app_that_cannot_start_stops_the_host(host: Host) -> None:
    host.mount("/static", _lifespan_app([], fail=True))
    with pytest.raises(LifespanFailed, match="the mounted app cannot start"):
        with _client(host):
            pass
    assert not host.started


# --- the gateway, mounted ----------------------------------------------------------------------
REQUESTS = [
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/nope"),
    ("TRACE", "/v1/models"),
    ("GET", "/gateway/chat/anything"),
    ("GET", "/gateway/"),
]


def test_the_mounted_gateway_answers_as_it_does_alone(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(ROUTES)
    host = host_app(gateway_config=config)
    try:
        gateway = host.gateway
        assert gateway is not None
        alone, mounted = _client(gateway), _client(host)
        for method, path in REQUESTS:
            one = alone.request(method, path, json={"model": "chat", "messages": []})
            other = mounted.request(method, path, json={"model": "chat", "messages": []})
            assert (other.status_code, other.content) == (one.status_code, one.content), path
            assert one.status_code in (401, 404, 405), (path, one.text)
        assert mounted.get("/gateway/").json()["error"]["type"] == "not_found"
        assert mounted.get("/healthz").json() == {"status": "ok"}  # the host's, not the gateway's
        assert b"shipyard_gateway_routes" in mounted.get("/metrics").content
    finally:
        for close in reversed(host.on_close):
            close()


def test_the_mounted_gateway_reloads_while_the_host_runs(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(ROUTES)
    host = host_app(gateway_config=config)
    _, key = host.keys.create("tests", ["route:*"])
    auth = {"Authorization": f"Bearer {key}"}
    with _client(host) as client:  # the host's lifespan starts the gateway's watcher
        assert [m["id"] for m in client.get("/v1/models", headers=auth).json()["data"]] == ["chat"]
        config.write_text(
            ROUTES + ROUTES.split("routes:\n", 1)[1].replace("name: chat", "name: more")
        )
        deadline = time.monotonic() + 30
        while True:
            ids = [m["id"] for m in client.get("/v1/models", headers=auth).json()["data"]]
            if ids == ["chat", "more"]:
                break
            assert time.monotonic() < deadline, f"the gateway did not reload: {ids}"
            time.sleep(0.05)


# --- what a failure means ---------------------------------------------------------------------
def test_a_database_outage_is_the_hosts_failure_not_a_missing_model(host: Host, home: Path) -> None:
    with _client(host) as client:
        admin = {"Authorization": f"Bearer {(home / 'admin.token').read_text().strip()}"}
        deploy = {
            "name": "ranker",
            "entry": "service.py:Ranker",
            "code": base64.b64encode(b"not read").decode(),
            "models": ["tiny@prod"],
        }
        missing = client.post("/api/v1/deployments", json=deploy, headers=admin)
        assert missing.status_code == 422, missing.text  # the caller's mistake: no such model
        assert missing.json()["error"]["type"] == "model_not_found"
        assert "tiny" in missing.json()["error"]["message"]
        # the database goes away (the key check is cached: the request gets past it)
        database = home / "meta.db"
        database.rename(home / "meta.db.gone")
        database.mkdir()
        host.meta.engine.dispose()
        down = client.post("/api/v1/deployments", json=deploy, headers=admin)
        assert down.status_code == 500, down.text
        error = down.json()["error"]
        assert error["type"] == "internal_error" and len(error["error_id"]) >= 8
        assert "tiny" not in error["message"]


# --- what the UI reads ---------------------------------------------------------------------
def test_the_uis_snapshots_are_taken_on_the_hosts_event_loop(host: Host) -> None:
    threads: list[int] = []

    class Watched(dict[str, Any]):
        def items(self) -> Any:
            threads.append(threading.get_ident())
            return super().items()

    host.supervisor.services = Watched()
    assert host.live_services() == {} and threads == [threading.get_ident()]  # not started
    with _client(host) as client:
        loop_thread = client.portal.call(threading.get_ident)  # type: ignore[union-attr]
        assert loop_thread != threading.get_ident()
        assert host.live_services() == {} and host.live_service("nosuch") is None
        assert threads[1:] == [loop_thread]


def test_the_host_makes_the_cache_key_pair_its_isolated_workers_read(home: Path) -> None:
    assert not (home / "cache.pub").exists()
    made = host_app()
    try:
        assert (home / "cache.pub").is_file() and (home / "cache.key").is_file()
        assert (home / "cache.key").stat().st_mode & 0o077 == 0
    finally:
        for close in reversed(made.on_close):
            close()


def test_a_service_call_the_host_fails_on_is_a_json_500_with_an_error_id(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any) -> None:  # a fault in the host's own call path
        raise RuntimeError("the invoker broke")

    host.invoke = broken  # type: ignore[assignment,method-assign]
    r = _client(host).post("/svc/ep", json={})
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["type"] == "internal_error" and len(error["error_id"]) == 16
    assert error["error_id"] in caplog.text and "the invoker broke" in caplog.text
