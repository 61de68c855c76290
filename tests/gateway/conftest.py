"""Fixtures for the gateway tests: fake upstreams on real ports, a key store on SQLite, and a
gateway served by uvicorn in a thread (real HTTP, real SSE)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gateway_fakes import (
    SECRETS,
    Recorder,
    Running,
    ServerThread,
    Upstreams,
    anthropic_upstream,
    echo_upstream,
    free_port,
    openai_upstream,
)

from shipyard.gateway import Gateway
from shipyard.gateway.hooks import Admission
from shipyard.keys import Guard, KeyStore
from shipyard.store.meta import MetaStore


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    recs = [Recorder() for _ in range(4)]
    servers = [
        ServerThread(openai_upstream(recs[0], name="a")).start(),
        ServerThread(openai_upstream(recs[1], name="b")).start(),
        ServerThread(anthropic_upstream(recs[2])).start(),
        ServerThread(echo_upstream(recs[3])).start(),
    ]
    try:
        yield Upstreams(
            servers[0].url,
            servers[1].url,
            servers[2].url,
            servers[3].url,
            f"http://127.0.0.1:{free_port()}",
            *recs,
        )
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def ups(upstreams: Upstreams, monkeypatch: pytest.MonkeyPatch) -> Upstreams:
    upstreams.clear()
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return upstreams


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
def serve_gateway(tmp_path: Path, keystore: KeyStore) -> Iterator[Callable[..., Running]]:
    started: list[ServerThread] = []

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
            guard=Guard(keystore),
            watch=watch,
            admission=admission,
            host_url=host_url,
            debounce_ms=50,
        )
        server = ServerThread(gateway.app).start()
        started.append(server)
        _, key = keystore.create("tests", ["route:*"])
        return Running(server.url, path, gateway, key, server)

    yield start
    for server in started:
        server.stop()
