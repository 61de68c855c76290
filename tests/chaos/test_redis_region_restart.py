"""Chaos: a Redis region restarts empty (no persistence) between two publishes.

Two private redis-servers are the regions of one replicated cache. A version of each of three
namespaces is published; one region is killed and started again on the same port, empty;
then a new version of every namespace is published through the same writer process. Every
publish must succeed the first time, both regions must hold the new version live, and readers
must read it. The restarted region is each of the two in turn (the preferred one picks the
version ids).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard import cache
from shipyard.cache.backends import open_backend
from shipyard.cache.backends.redis import RedisBackend
from shipyard.cache.backends.replicated import ReplicatedBackend
from support.redis_servers import RedisServer

NAMESPACES = ("home-rows", "ranker", "embeddings")
ROWS = 50


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_CACHE_SIGNING_KEY", "SHIPYARD_CACHE_VERIFY_KEY"):
        monkeypatch.delenv(name, raising=False)


def _publish(backend: ReplicatedBackend, namespace: str, round_: int) -> str:
    with cache.Writer(namespace, backend=backend) as w:
        w.put_many({f"k{i}": [round_, i] for i in range(ROWS)})
    assert w.info is not None
    return w.info.version


@pytest.mark.parametrize("restarted", [0, 1], ids=["preferred", "second"])
def test_publish_after_a_region_restarts_empty(
    redis_server: Callable[[], RedisServer], restarted: int
) -> None:
    servers = [redis_server(), redis_server()]
    url = ",".join(s.url for s in servers)
    backend = open_backend(url)
    assert isinstance(backend, ReplicatedBackend)
    for namespace in NAMESPACES:  # two versions each, so the regions' counters have moved on
        _publish(backend, namespace, 0)
        _publish(backend, namespace, 1)

    servers[restarted].signal(signal.SIGKILL)
    servers[restarted].start()  # same port, nothing kept

    failures: list[str] = []
    published: dict[str, str] = {}
    for namespace in NAMESPACES:
        try:
            published[namespace] = _publish(backend, namespace, 2)
        except cache.CacheError as exc:
            failures.append(f"{namespace}: {exc}")
    assert failures == []

    for server in servers:  # each region by itself holds the new version, live and whole
        region = RedisBackend(server.url)
        try:
            for namespace, version in published.items():
                assert region.live(namespace) == version
                held = {i.version: i.keys for i in region.versions(namespace)}
                assert held[version] == ROWS
        finally:
            region.close()
    for namespace in NAMESPACES:  # and readers (a new process's view) read it
        got = cache.reader(namespace, url=url, strict=True).get_many([f"k{i}" for i in range(ROWS)])
        assert got == {f"k{i}": [2, i] for i in range(ROWS)}
