"""The replicated backend over real redis-servers: writes to all, reads with fallback."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from shipyard.cache.backends.base import BackendUnavailable, CacheError
from shipyard.cache.backends.redis import RedisBackend
from shipyard.cache.backends.replicated import ReplicatedBackend, ReplicationError
from support.counting import Counting
from support.redis_servers import RedisServer, closed_port_url, closed_port_urls, silent_port

NS = "home-rows"
ITEMS = [(b"p%d" % i, b"row%d" % i) for i in range(300)]
KEYS = [key for key, _ in ITEMS]
VALUES = [value for _, value in ITEMS]


def _fallbacks(url: str) -> float:
    value = REGISTRY.get_sample_value("shipyard_cache_fallbacks_total", {"region": url})
    return value or 0.0


def _up(url: str) -> float | None:
    return REGISTRY.get_sample_value("shipyard_cache_region_up", {"region": url})


def _publish(cache: ReplicatedBackend | RedisBackend, items: list[tuple[bytes, bytes]]) -> str:
    version = cache.begin(NS, {"run": "RankerFlow/1"})
    cache.put_many(NS, version, items)
    cache.publish(NS, version)
    return version


def test_writes_go_to_every_region_with_the_same_version(redis_urls: list[str]) -> None:
    one, two = (RedisBackend(url) for url in redis_urls)
    one.begin(NS, {})
    one.begin(NS, {})  # the first region is ahead: its id wins, the second follows it
    cache = ReplicatedBackend([RedisBackend(url) for url in redis_urls])
    assert cache.url == ",".join(redis_urls)
    version = _publish(cache, ITEMS)
    assert version == "000003"
    for region in (one, two):
        assert region.live(NS) == version
        assert region.get_many(NS, version, KEYS) == VALUES
        info = region.versions(NS)[-1]
        assert (info.version, info.keys) == (version, len(ITEMS))
        assert info.meta == {"run": "RankerFlow/1"}
    assert two.begin(NS, {}) > version  # the second region's counter moved past it too
    assert cache.live(NS) == version
    assert cache.get_many(NS, version, KEYS[:3]) == VALUES[:3]


def test_diverged_version_ids_heal_above_every_id_held(redis_urls: list[str]) -> None:
    one, two = (RedisBackend(url) for url in redis_urls)
    two.begin(NS, {})  # written to the second region alone: the first region's next id collides
    two.begin(NS, {})
    cache = ReplicatedBackend([RedisBackend(url) for url in redis_urls])
    version = cache.begin(NS, {})
    assert version == "000003"  # above every id either region holds, the same in both
    assert [i.version for i in one.versions(NS)] == ["000003"]  # 000001 was given up
    assert [i.version for i in two.versions(NS)] == ["000001", "000002", "000003"]
    assert one.begin(NS, {}) == "000004"  # the first region's counter moved past it


def test_a_region_restarted_empty_takes_the_next_publish() -> None:
    from shipyard.cache.backends import memory

    names = [f"memory://restart-{i}-{uuid.uuid4().hex}" for i in (0, 1)]
    try:
        cache = ReplicatedBackend([memory.MemoryBackend(name) for name in names])
        for _ in range(2):
            _publish(cache, ITEMS)
        memory.wipe(names[0].removeprefix("memory://"))  # the preferred region comes back empty
        version = _publish(cache, ITEMS[:5])
        assert version == "000003"
        for name in names:
            region = memory.MemoryBackend(name)
            assert region.live(NS) == version
            assert region.get_many(NS, version, KEYS[:5]) == VALUES[:5]
    finally:
        for name in names:
            memory.reset(name.removeprefix("memory://"))


def test_publish_fails_before_any_region_moves_when_one_is_incomplete(
    redis_urls: list[str],
) -> None:
    one, two = (RedisBackend(url) for url in redis_urls)
    cache = ReplicatedBackend([RedisBackend(url) for url in redis_urls])
    old = _publish(cache, ITEMS)
    version = cache.begin(NS, {})
    cache.put_many(NS, version, ITEMS)
    one.put_many(NS, version, [(b"extra", b"x")])  # e.g. a shard whose write to two failed
    with pytest.raises(ReplicationError) as caught:
        cache.publish(NS, version)
    assert list(caught.value.failures) == [two.url]
    assert f"holds {len(ITEMS)} of the {len(ITEMS) + 1} keys" in str(caught.value)
    assert "nothing was published" in str(caught.value)
    assert one.live(NS) == old and two.live(NS) == old


def test_a_region_that_is_down_fails_the_publish_naming_it(
    redis_urls: list[str], redis_server: Callable[[], RedisServer]
) -> None:
    server = redis_server()
    one = RedisBackend(redis_urls[0])
    cache = ReplicatedBackend([one, RedisBackend(server.url)])
    old = _publish(cache, ITEMS)
    version = cache.begin(NS, {})
    cache.put_many(NS, version, ITEMS[:10])
    server.signal(signal.SIGKILL)
    with pytest.raises(ReplicationError) as caught:
        cache.put_many(NS, version, ITEMS[10:])
    assert list(caught.value.failures) == [server.url]
    assert f"cannot write to version {version} of 'home-rows' in every region" in str(caught.value)
    with pytest.raises(ReplicationError) as caught:
        cache.publish(NS, version)
    assert list(caught.value.failures) == [server.url]
    assert "unavailable" in str(caught.value) and "Connection refused" in str(caught.value)
    assert "nothing was published" in str(caught.value)
    assert one.live(NS) == old


def test_degraded_publish_records_the_region_that_missed_it(
    redis_urls: list[str], redis_server: Callable[[], RedisServer]
) -> None:
    server = redis_server()
    one, two = RedisBackend(redis_urls[0]), RedisBackend(server.url)
    cache = ReplicatedBackend([two, one], degraded_ok=True)  # the one that dies is preferred
    old = _publish(cache, ITEMS)
    server.signal(signal.SIGKILL)
    version = cache.begin(NS, {"run": "RankerFlow/2"})
    cache.put_many(NS, version, [(key, b"new") for key in KEYS])
    info = cache.publish(NS, version)
    assert info.version == version and info.keys == len(ITEMS)
    assert info.meta["degraded"] is True and info.meta["run"] == "RankerFlow/2"
    assert list(info.meta["missing_regions"]) == [two.url]
    assert one.live(NS) == version
    server.start()  # back, empty (no persistence): it holds neither version
    assert cache.live(NS) == version  # an empty region does not blank the namespace
    assert cache.get_many(NS, version, KEYS[:2]) == [b"new", b"new"]  # nor answer "absent"
    assert cache.get_many(NS, old, KEYS[:1]) == VALUES[:1]


def test_reads_fall_back_when_the_preferred_region_refuses(redis_urls: list[str]) -> None:
    dead = closed_port_url()
    writer = ReplicatedBackend([RedisBackend(url) for url in redis_urls])
    version = _publish(writer, ITEMS)
    cache = ReplicatedBackend([RedisBackend(dead), RedisBackend(redis_urls[1])])
    before = _fallbacks(dead)
    assert cache.live(NS) == version
    assert cache.get_many(NS, version, KEYS) == VALUES
    assert _fallbacks(dead) - before >= 2
    assert _up(dead) == 0
    assert _up(redis_urls[1]) == 1


def test_a_hung_region_costs_one_deadline_then_is_skipped(redis_urls: list[str]) -> None:
    sock, hung = silent_port()
    try:
        writer = ReplicatedBackend([RedisBackend(url) for url in redis_urls])
        version = _publish(writer, ITEMS)
        counted = Counting(RedisBackend(hung, read_timeout=5))
        regions = [counted, RedisBackend(redis_urls[1])]
        cache = ReplicatedBackend(regions, read_deadline_ms=30, retry_after_s=60)  # type: ignore[arg-type]
        started = time.monotonic()
        assert cache.get_many(NS, version, KEYS[:5]) == VALUES[:5]
        first = time.monotonic() - started
        assert first < 1.0  # the hung region cost the 30 ms deadline, not its 5 s read timeout
        assert len(counted.reads) == 1
        for _ in range(20):
            assert cache.get_many(NS, version, KEYS[:5]) == VALUES[:5]
        assert len(counted.reads) == 1  # circuit open: the hung region is not tried again
        assert _up(hung) == 0
    finally:
        sock.close()


def test_every_region_down_is_unavailable_naming_each() -> None:
    urls = closed_port_urls(2)
    cache = ReplicatedBackend([RedisBackend(url) for url in urls])
    with pytest.raises(BackendUnavailable) as caught:
        cache.get_many(NS, "000001", [b"k"])
    assert all(url in str(caught.value) for url in urls)
    with pytest.raises(ReplicationError, match="cannot begin a version of 'home-rows' in any"):
        cache.begin(NS, {})


def test_rollback_and_drop_apply_to_every_region(redis_urls: list[str]) -> None:
    one, two = (RedisBackend(url) for url in redis_urls)
    cache = ReplicatedBackend([RedisBackend(url) for url in redis_urls])
    old = _publish(cache, ITEMS)
    new = _publish(cache, [(key, b"new") for key in KEYS])
    cache.set_live(NS, old)
    assert one.live(NS) == two.live(NS) == old
    cache.drop(NS, new)
    assert [i.version for i in one.versions(NS)] == [i.version for i in two.versions(NS)] == [old]
    with pytest.raises(ReplicationError, match="is live"):
        cache.drop(NS, old)


def test_configuration_errors_are_named() -> None:
    with pytest.raises(CacheError, match="at least one region"):
        ReplicatedBackend([])
    url = closed_port_url()
    with pytest.raises(CacheError, match="twice"):
        ReplicatedBackend([RedisBackend(url), RedisBackend(url)])
