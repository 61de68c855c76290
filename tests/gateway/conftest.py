"""Fixtures for the gateway tests: fake upstreams in memory (``ups``) or on real ports
(``live_ups``), a key store on SQLite, and a gateway in memory behind a TestClient
(``serve_gateway``) or served by uvicorn in a thread (``live_gateway``: real HTTP, real SSE)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from gateway_fakes import (
    SECRETS,
    KeptOpen,
    Running,
    ServerThread,
    Upstreams,
    asgi,
    free_port,
    in_memory_upstreams,
)

from shipyard.gateway import Admission, Gateway
from shipyard.keys import Guard, KeyStore
from shipyard.store.meta import MetaStore


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def ups(secrets_in_env: None) -> Iterator[Upstreams]:
    """Fake upstreams in memory, fresh for each test."""
    upstreams = in_memory_upstreams()
    yield upstreams
    upstreams.gate.set()  # a stream still held by a test ends


@pytest.fixture(scope="session")
def _live_upstreams() -> Iterator[Upstreams]:
    ports = [free_port() for _ in range(5)]
    upstreams = Upstreams(*(f"http://127.0.0.1:{port}" for port in ports))
    servers = [
        ServerThread(asgi(handler), port).start()
        for handler, port in zip(upstreams.handlers().values(), ports, strict=False)
    ]  # the fifth port, `dead`, stays closed
    try:
        yield upstreams
    finally:
        upstreams.gate.set()
        for server in servers:
            server.stop()


@pytest.fixture
def live_ups(_live_upstreams: Upstreams, secrets_in_env: None) -> Iterator[Upstreams]:
    """The fake upstreams on real loopback ports (started once per session)."""
    _live_upstreams.clear()
    yield _live_upstreams
    _live_upstreams.gate.set()


@pytest.fixture
def keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyStore]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    meta = MetaStore.open(f"sqlite:///{tmp_path}/meta.db")
    store = KeyStore(meta)
    try:
        yield store
    finally:
        store.close()
        meta.close()


@pytest.fixture
def serve_gateway(
    tmp_path: Path, keystore: KeyStore, ups: Upstreams
) -> Iterator[Callable[..., Running]]:
    """Start a gateway in memory on ``ups``: no socket, its lifespan run by a TestClient."""
    started: list[KeptOpen] = []

    def start(
        text: str,
        *,
        watch: bool = False,
        admission: Admission | None = None,
        host_url: str | None = None,
    ) -> Running:
        path = tmp_path / "gateway.yaml"
        path.write_text(text)
        gateway = Gateway(
            path,
            guard=Guard(keystore, allowed_hosts=["testserver"]),  # the TestClient's Host
            watch=watch,
            admission=admission,
            host_url=host_url,
            debounce_ms=50,
            transport=ups.transport(),
        )
        client = KeptOpen(gateway).__enter__()
        started.append(client)
        _, key = keystore.create("tests", ["route:*"])
        return Running("http://testserver", path, gateway, key, client)

    yield start
    ups.gate.set()
    for client in started:
        client.__exit__(None, None, None)


@pytest.fixture
def live_gateway(tmp_path: Path, keystore: KeyStore) -> Iterator[Callable[..., Running]]:
    """Start a gateway under uvicorn on a real port, with its own pooled upstream client."""
    started: list[tuple[ServerThread, httpx.Client]] = []

    def start(text: str, *, watch: bool = False) -> Running:
        path = tmp_path / "gateway.yaml"
        path.write_text(text)
        gateway = Gateway(path, guard=Guard(keystore), watch=watch, debounce_ms=50)
        server = ServerThread(gateway).start()
        client = httpx.Client(timeout=30)
        started.append((server, client))
        _, key = keystore.create("tests", ["route:*"])
        return Running(server.url, path, gateway, key, client, server)

    yield start
    for server, client in started:
        client.close()
        server.stop()
