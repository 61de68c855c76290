"""The Redis backend against a real redis-server (scripts/services.sh)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from shipyard.cache.backends.base import BackendUnavailable, CacheError
from shipyard.cache.backends.redis import RedisBackend, mask_url
from support.redis_servers import closed_port_url, silent_port

NS = "home-rows"


@pytest.fixture(name="backend")
def backend_fixture(redis_url: str) -> Iterator[RedisBackend]:
    backend = RedisBackend(redis_url)
    yield backend
    backend.close()


def _raw(url: str) -> redis.Redis:
    return redis.Redis.from_url(url.split("?")[0])


def test_write_publish_read_round_trip(backend: RedisBackend) -> None:
    assert backend.live(NS) is None
    version = backend.begin(NS, {"run": "RankerFlow/12"})
    assert backend.put_many(NS, version, [(b"p1", b"a"), (b"p2", b"b")]) == 2
    assert backend.put_many(NS, version, iter([(b"p1", b"a"), (b"\x00\xff", b"c")])) == 2
    assert backend.live(NS) is None  # nothing visible before publish
    info = backend.publish(NS, version)
    assert (info.version, info.keys, info.meta) == (version, 3, {"run": "RankerFlow/12"})
    assert info.published_at is not None and info.published_at >= info.created_at
    assert backend.live(NS) == version
    got = backend.get_many(NS, version, [b"p2", b"missing", b"\x00\xff", b"p1"])
    assert got == [b"b", None, b"c", b"a"]
    assert backend.get_many(NS, version, []) == []
    assert backend.namespaces() == [NS]
    assert backend.versions(NS) == [info]


def test_abandoned_version_leaves_live_untouched(backend: RedisBackend) -> None:
    first = backend.begin(NS, {})
    backend.put_many(NS, first, [(b"k", b"old")])
    backend.publish(NS, first)
    second = backend.begin(NS, {"attempt": 2})
    backend.put_many(NS, second, [(b"k", b"new"), (b"j", b"new")])
    # the writer dies here: no publish
    assert second > first
    assert backend.live(NS) == first
    assert backend.get_many(NS, first, [b"k"]) == [b"old"]
    infos = {info.version: info for info in backend.versions(NS)}
    assert infos[second].published_at is None and infos[second].keys == 2
    with pytest.raises(CacheError, match="never published"):
        backend.set_live(NS, second)


def test_published_version_is_read_only_and_publish_is_idempotent(backend: RedisBackend) -> None:
    version = backend.begin(NS, {"a": 1})
    backend.put_many(NS, version, [(b"k", b"v")])
    first = backend.publish(NS, version)
    with pytest.raises(CacheError, match="published and read-only"):
        backend.put_many(NS, version, [(b"k", b"changed")])
    again = backend.publish(NS, version, meta={"degraded": True})
    assert again.published_at == first.published_at
    assert again.meta == {"a": 1, "degraded": True}
    assert backend.get_many(NS, version, [b"k"]) == [b"v"]


def test_rollback_with_set_live_and_drop(backend: RedisBackend, redis_url: str) -> None:
    versions = []
    for value in (b"one", b"two"):
        version = backend.begin(NS, {})
        backend.put_many(NS, version, [(b"k", value)] + [(b"x%d" % i, value) for i in range(2500)])
        backend.publish(NS, version)
        versions.append(version)
    old, new = versions
    backend.set_live(NS, old)
    assert backend.live(NS) == old
    with pytest.raises(CacheError, match="is live"):
        backend.drop(NS, old)
    with pytest.raises(CacheError, match="does not exist"):
        backend.set_live(NS, "999999")
    backend.drop(NS, new)
    backend.drop(NS, new)  # dropping again (or finishing an interrupted drop) is fine
    assert [info.version for info in backend.versions(NS)] == [old]
    assert backend.get_many(NS, new, [b"k"]) == [None]
    prefix = redis_url.split("prefix=")[1]
    assert list(_raw(redis_url).scan_iter(match=f"{prefix}:{NS}:v:{new}:*")) == []
    with pytest.raises(CacheError, match="does not exist"):
        backend.set_live(NS, new)
    assert backend.get_many(NS, old, [b"k"]) == [b"one"]


def test_begin_with_a_given_version(backend: RedisBackend) -> None:
    assert backend.begin(NS, {}, version="000041") == "000041"
    assert backend.begin(NS, {}) == "000042"
    with pytest.raises(CacheError, match="already exists"):
        backend.begin(NS, {}, version="000042")
    with pytest.raises(CacheError, match="string of digits"):
        backend.begin(NS, {}, version="v1")


def test_versions_sort_by_number_and_prefixes_isolate(redis_url: str) -> None:
    backend = RedisBackend(redis_url)
    backend.begin(NS, {}, version="999999")
    backend.begin(NS, {})
    assert [info.version for info in backend.versions(NS)] == ["999999", "1000000"]
    other = RedisBackend(redis_url.replace("prefix=", "prefix=other"))
    assert other.versions(NS) == [] and other.namespaces() == []
    assert RedisBackend(redis_url).namespaces() == [NS]


def test_bad_names_and_urls_are_named() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0")
    with pytest.raises(CacheError, match="namespace 'a:b' is not valid"):
        backend.begin("a:b", {})
    with pytest.raises(CacheError, match="unknown option.*colour"):
        RedisBackend("redis://127.0.0.1/0?colour=red")
    with pytest.raises(CacheError, match="read_timeout='-1'"):
        RedisBackend("redis://127.0.0.1/0?read_timeout=-1")
    with pytest.raises(CacheError, match="scheme"):
        RedisBackend("http://127.0.0.1/0")
    masked = mask_url("redis://user:s3cret@host:6380/1?prefix=x")
    assert masked == "redis://user:***@host:6380/1?prefix=x"
    assert RedisBackend("rediss://:pw@127.0.0.1:1/0").url == "rediss://:***@127.0.0.1:1/0"


def test_connection_refused_is_unavailable_and_names_the_url() -> None:
    url = closed_port_url().replace("redis://", "redis://:hunter2@")
    backend = RedisBackend(url)
    for call in (
        lambda: backend.live(NS),
        lambda: backend.get_many(NS, "000001", [b"k"]),
        lambda: backend.begin(NS, {}),
        lambda: backend.versions(NS),
    ):
        with pytest.raises(BackendUnavailable) as caught:
            call()
        assert mask_url(url) in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_hung_server_costs_a_reader_only_the_read_timeout() -> None:
    sock, url = silent_port()
    try:
        backend = RedisBackend(url, read_timeout=0.1)
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="Timeout"):
            backend.get_many(NS, "000001", [b"k"])
        assert time.monotonic() - started < 2  # no retries with back-off behind our back
    finally:
        sock.close()


def test_bulk_writes_are_batched(backend: RedisBackend, redis_url: str) -> None:
    raw = _raw(redis_url)
    raw.config_resetstat()
    version = backend.begin(NS, {})
    count = 100_000
    written = backend.put_many(NS, version, ((b"k%d" % i, b"v%d" % i) for i in range(count)))
    assert written == count
    assert backend.publish(NS, version).keys == count
    stats = raw.info("commandstats")
    scripts = sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))
    assert scripts <= count // 1000 + 5  # one round trip per 1,000 keys, not one per key
    keys = [b"k%d" % i for i in range(0, count, 997)]
    assert backend.get_many(NS, version, keys) == [b"v%d" % i for i in range(0, count, 997)]


def test_publish_is_atomic_for_a_concurrent_reader(backend: RedisBackend) -> None:
    keys = [b"k%d" % i for i in range(200)]
    problems: list[str] = []
    seen: set[str] = set()
    done = threading.Event()

    def write(round_: int) -> None:
        version = backend.begin(NS, {})
        for start in range(0, len(keys), 50):  # several chunks: readers must see none early
            backend.put_many(NS, version, [(k, b"%d" % round_) for k in keys[start : start + 50]])
        backend.publish(NS, version)

    write(0)

    def read() -> None:
        while not done.is_set():
            version = backend.live(NS)
            if version is None:
                problems.append("no live version")
                continue
            values = set(backend.get_many(NS, version, keys))
            seen.add(version)
            if len(values) != 1 or None in values:
                problems.append(f"version {version} read as {sorted(map(repr, values))}")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for round_ in range(1, 8):
            write(round_)
    finally:
        done.set()
        reader.join(timeout=10)
    assert problems == []
    assert len(seen) >= 2


def test_a_forked_child_gets_its_own_connections(backend: RedisBackend) -> None:
    version = backend.begin(NS, {})
    backend.put_many(NS, version, [(b"k", b"v")])
    backend.publish(NS, version)
    assert backend.get_many(NS, version, [b"k"]) == [b"v"]  # the parent's pool is in use
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            ok = all(backend.get_many(NS, version, [b"k"]) == [b"v"] for _ in range(50))
            code = 0 if ok else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.get_many(NS, version, [b"k"]) == [b"v"]


def test_writer_and_reader_through_a_redis_url(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public API end to end on Redis: settings, commit, read, rollback, configure."""
    from shipyard import cache

    monkeypatch.setenv("SHIPYARD_CACHE_URL", redis_url)
    ns = f"api-{uuid.uuid4().hex[:8]}"
    cache.configure(ns, keep=2, max_age="1h")
    with cache.writer(ns) as w:
        w.put_many({"a": [1, 2], "b": {"x": 1}})
    first = cache.reader(ns).version
    with cache.writer(ns) as w:
        w.put("a", [3])
    reader = cache.reader(ns)
    assert reader.get("a") == [3] and reader.get("b") is None and reader.version != first
    assert reader.get_many(["a", "zz"], default=0) == {"a": [3], "zz": 0}
    cache.rollback(ns)
    assert cache.reader(ns).get_many(["a", "b"]) == {"a": [1, 2], "b": {"x": 1}}
