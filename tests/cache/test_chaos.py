"""Chaos: lose the preferred Redis region in the middle of a read load.

Two private redis-servers hold the same published version; four threads read 50 random keys
at a time through the replicated backend for three seconds, and after one second the preferred
server is SIGKILLed (it is gone) or SIGSTOPped (it hangs: connections open, nothing answers,
the harder case). Every read must return the right values, none may stall, and the fallbacks
must show in the metrics.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from shipyard.cache.backends.redis import RedisBackend
from shipyard.cache.backends.replicated import ReplicatedBackend
from support.counting import Counting
from support.redis_servers import RedisServer

NS = "home-rows"
KEYS = [b"profile-%d" % i for i in range(2000)]
VALUES = [b"row-%d-" % i + b"x" * 200 for i in range(2000)]
THREADS, SECONDS, SIGNAL_AT = 4, 3.0, 1.0
RETRY_AFTER_S = 0.5  # the breaker window


def _metric(name: str, region: str) -> float:
    return REGISTRY.get_sample_value(name, {"region": region}) or 0.0


Load = tuple[list[threading.Thread], list[tuple[float, float]], list[str]]


def _start_load(cache: ReplicatedBackend, version: str) -> Load:
    """THREADS threads reading for SECONDS: the threads, (end time, latency) of each read,
    and the problems seen."""
    samples: list[tuple[float, float]] = []
    problems: list[str] = []
    stop_at = time.monotonic() + SECONDS

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        count = 0
        while time.monotonic() < stop_at:
            picks = rng.sample(range(len(KEYS)), 50)
            started = time.perf_counter()
            try:
                if count % 100 == 0 and cache.live(NS) != version:
                    problems.append("live() returned the wrong version")
                got = cache.get_many(NS, version, [KEYS[i] for i in picks])
            except Exception as exc:  # any error reaching a caller fails the test
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            samples.append((time.monotonic(), time.perf_counter() - started))
            if got != [VALUES[i] for i in picks]:
                problems.append(f"wrong values for {len(picks)} keys")
            count += 1

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    return threads, samples, problems


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSTOP], ids=["sigkill", "sigstop"])
def test_reads_survive_losing_the_preferred_region(
    signum: signal.Signals, redis_server: Callable[[], RedisServer]
) -> None:
    preferred, other = redis_server(), redis_server()
    counted = Counting(RedisBackend(preferred.url))
    cache = ReplicatedBackend(
        [counted, RedisBackend(other.url)],  # type: ignore[list-item]
        read_deadline_ms=20,
        retry_after_s=RETRY_AFTER_S,
    )
    version = cache.begin(NS, {"run": "ChaosFlow/1"})
    cache.put_many(NS, version, zip(KEYS, VALUES, strict=True))
    cache.publish(NS, version)
    fallbacks_before = _metric("shipyard_cache_fallbacks_total", preferred.url)

    threads, samples, problems = _start_load(cache, version)
    time.sleep(SIGNAL_AT)
    signalled_at = time.monotonic()
    preferred.signal(signum)
    for thread in threads:
        thread.join(timeout=SECONDS + 10)
    assert not any(thread.is_alive() for thread in threads), "a reader is stuck"
    down_gauge = _metric("shipyard_cache_region_up", preferred.url)

    assert problems == []
    latencies = [latency for _, latency in samples]
    after = [latency for at, latency in samples if at > signalled_at + 0.05]
    assert len(after) > 100, "the load must keep reading while the region is lost"
    assert max(latencies) < 1.0, "a read stalled on the lost region"
    # The circuit breaker: once the region is marked down, reads stop trying it (and paying
    # the deadline): after the reads in flight at the signal, each thread probes it at most
    # once per breaker window.
    windows = (SECONDS - SIGNAL_AT) / RETRY_AFTER_S + 1
    tried = counted.reads_since(signalled_at + 0.05)
    assert tried <= THREADS * windows, f"{tried} reads tried the lost region"
    assert _metric("shipyard_cache_fallbacks_total", preferred.url) > fallbacks_before
    assert down_gauge == 0

    # Recovery: a resumed server is used again after the breaker window; a restarted one is
    # empty (no persistence), and must not answer "absent" for the version it lost.
    if signum == signal.SIGSTOP:
        preferred.signal(signal.SIGCONT)
    else:
        preferred.start()
    deadline = time.monotonic() + 10
    while True:
        assert cache.get_many(NS, version, KEYS[:50]) == VALUES[:50]
        assert cache.live(NS) == version
        if signum == signal.SIGKILL or _metric("shipyard_cache_region_up", preferred.url) == 1:
            break
        assert time.monotonic() < deadline, "the resumed region was never used again"
        time.sleep(0.05)
    if signum == signal.SIGKILL:
        time.sleep(0.6)  # past the breaker window: the empty region is asked, and skipped
        assert cache.get_many(NS, version, KEYS[-50:]) == VALUES[-50:]
    cache.close()
