"""The host's Host checks and key watch in process (no workers): a host bound to ``0.0.0.0``
answers a scraper that names the address it was reached on; a forged Host learns no service
names; the standalone gateway's ``/metrics`` is checked like the host's; and the host logs,
once, the moment the last invoke key is gone (issue 11, items 6 and 7)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shipyard.gateway import Gateway
from shipyard.keys import Guard
from shipyard.serve.host import Host
from shipyard.store import context as _stores

EVIL = "evil.example"
ROUTES = """
routes:
  - name: chat
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


def _host(bind: str = "127.0.0.1") -> Iterator[Host]:
    made = Host.from_settings(bind=bind)
    yield made
    for close in reversed(made.on_close):
        close()


@pytest.fixture
def host(home: Path) -> Iterator[Host]:
    yield from _host()


@pytest.fixture
def wide_host(home: Path) -> Iterator[Host]:
    """A host bound to every address, as ``shipyard serve --host 0.0.0.0``."""
    yield from _host("0.0.0.0")


def _client(app: Any, url: str = "http://127.0.0.1:8000", peer: str = "127.0.0.1") -> TestClient:
    # TestClient's ASGI ``server`` is the URL's host and port: where the connection arrived
    return TestClient(app, client=(peer, 1), base_url=url, raise_server_exceptions=False)


# --- item 6: Host checks ---------------------------------------------------------------------
def test_a_host_on_every_address_answers_the_address_it_was_reached_on(wide_host: Host) -> None:
    scraper = _client(wide_host, "http://10.1.2.3:8000", peer="10.1.2.50")
    assert scraper.get("/metrics").status_code == 200  # Host: 10.1.2.3:8000, its own address
    assert scraper.get("/metrics", headers={"Host": "10.1.2.4:8000"}).status_code == 403
    assert scraper.get("/metrics", headers={"Host": EVIL}).status_code == 403
    # a name is never taken from the connection: only IP literals cannot be a rebinding
    named = _client(wide_host, f"http://{EVIL}:8000")
    assert named.get("/metrics").status_code == 403


def test_a_forged_host_learns_no_service_names(host: Host) -> None:
    client = _client(host)
    for path in ("/nosuch/openapi.json", "/nosuch/docs"):
        forged = client.get(path, headers={"Host": EVIL})
        assert forged.status_code == 403 and "nosuch" not in forged.text  # not 404: no probing
        assert client.get(path).status_code == 404
    ready = client.get("/readyz", headers={"Host": EVIL})  # not started: 503, and no detail
    assert ready.status_code == 503 and ready.json() == {"status": "not ready"}
    assert set(client.get("/readyz").json()) == {"status", "services", "not_ready", "isolation"}


def test_the_standalone_gateways_metrics_are_checked_like_the_hosts(
    host: Host, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(ROUTES)
    guard = Guard(host.keys, allowed_hosts=["gateway.internal"])
    gateway = Gateway(config, guard=guard, watch=False)
    with _client(gateway, "http://127.0.0.1:8001") as client:
        assert b"shipyard_gateway_routes" in client.get("/metrics").content
        named = client.get("/metrics", headers={"Host": "gateway.internal"})
        assert named.status_code == 200
        forged = client.get("/metrics", headers={"Host": EVIL})
        assert forged.status_code == 403 and forged.json()["error"]["type"] == "forbidden"
        assert b"shipyard_gateway" not in forged.content
        assert client.get("/healthz", headers={"Host": EVIL}).status_code == 200


# --- item 7: the last invoke key -------------------------------------------------------------
def _lines(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


def _until(done: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_the_host_logs_the_last_invoke_keys_revocation_when_it_happens(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    first, _ = host.keys.create("client", ["invoke:*"])
    host.keys_watch_seconds = 0.01  # the default is the key cache's lifetime, 5 s
    caplog.set_level(logging.INFO, logger="shipyard")
    warned = lambda: _lines(caplog, logging.WARNING, "key is left")  # noqa: E731
    with _client(host):  # the lifespan runs; no call is ever made
        assert not _lines(caplog, logging.WARNING, "open to loopback")  # a key exists at start
        host.keys.revoke(first.key_id)
        _until(lambda: len(warned()) == 1, "the warning")
        (line,) = warned()
        assert "'invoke'" in line and "service calls are open again" in line
        assert "any local user or process" in line and "--scope 'invoke:*'" in line
        # once: the watcher keeps looking, and says nothing more until a key exists again
        second, _ = host.keys.create("client", ["invoke:ranker"])
        _until(lambda: bool(_lines(caplog, logging.INFO, "keys exist again")), "the all-clear")
        assert len(warned()) == 1
        host.keys.revoke(second.key_id)
        _until(lambda: len(warned()) == 2, "the second warning")
