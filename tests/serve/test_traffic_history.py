"""The host's in-memory traffic history: points computed from the deltas of its own metrics
(requests, 5xx and refusals, latency buckets), a bounded ring per service, and the sampling
task that the host's lifespan starts and stops."""

from __future__ import annotations

import asyncio

import pytest

from shipyard.serve.history import History, quantile
from shipyard.serve.metrics import HostMetrics


def _serve(metrics: HostMetrics, service: str, status: int, seconds: float, n: int = 1) -> None:
    counters = metrics.endpoint(service, "predict")
    for _ in range(n):
        counters.count(status)
        counters.latency.observe(seconds)


def test_the_first_sample_is_a_baseline_and_later_ones_are_deltas() -> None:
    metrics = HostMetrics()
    history = History(metrics)
    _serve(metrics, "ranker", 200, 0.003, n=50)  # before the baseline: never counted
    history.sample(now=1000.0)
    assert history.points("ranker") == [] and history.last_sample == 1000.0

    _serve(metrics, "ranker", 200, 0.003, n=90)  # all in the (0.0025, 0.005] bucket
    _serve(metrics, "ranker", 503, 0.2, n=10)  # in (0.1, 0.25]
    history.sample(now=1010.0)
    (first,) = history.points("ranker")
    assert first.at == 1010.0 and first.requests == 100
    assert first.rps == pytest.approx(10.0)
    assert first.error_rate == pytest.approx(0.1)
    assert first.p50 is not None and 0.0025 < first.p50 <= 0.005
    assert first.p99 is not None and 0.1 < first.p99 <= 0.25

    history.sample(now=1020.0)  # nothing happened: a zero point without percentiles
    idle = history.points("ranker")[-1]
    assert (idle.requests, idle.rps, idle.error_rate) == (0, 0.0, None)
    assert idle.p50 is None and idle.p99 is None
    assert history.services() == ["ranker"]
    assert [p.at for p in history.points("ranker", since=1015.0)] == [1020.0]
    assert history.points("unknown") == []


def test_refused_requests_count_as_errors_per_service() -> None:
    metrics = HostMetrics()
    history = History(metrics)
    history.sample(now=0.0)
    _serve(metrics, "a", 200, 0.01, n=3)
    metrics.rejected.labels("a", "overloaded").inc(1)
    _serve(metrics, "b", 422, 0.01, n=4)  # a client's mistake is not the service's error
    history.sample(now=5.0)
    (a,) = history.points("a")
    (b,) = history.points("b")
    assert a.requests == 4 and a.error_rate == pytest.approx(0.25) and a.rps == pytest.approx(0.8)
    assert b.requests == 4 and b.error_rate == 0.0


def test_the_ring_keeps_the_last_size_points() -> None:
    metrics = HostMetrics()
    history = History(metrics, size=5)
    for second in range(12):
        _serve(metrics, "s", 200, 0.001)
        history.sample(now=float(second))
    points = history.points("s")
    assert [p.at for p in points] == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert all(p.requests == 1 for p in points)
    history.sample(now=11.0)  # the same instant again: no point, no division by zero
    assert len(history.points("s")) == 5


def test_quantile_interpolates_like_prometheus() -> None:
    inf = float("inf")
    assert quantile(0.5, {}) is None
    assert quantile(0.5, {0.1: 0.0, inf: 0.0}) is None
    assert quantile(0.5, {1.0: 10.0, 2.0: 20.0, inf: 20.0}) == pytest.approx(1.0)
    assert quantile(0.75, {1.0: 10.0, 2.0: 20.0, inf: 20.0}) == pytest.approx(1.5)
    assert quantile(0.99, {1.0: 0.0, 2.0: 0.0, inf: 5.0}) == 2.0  # beyond the last bound


def test_the_sampling_task_runs_in_the_event_loop_until_stopped() -> None:
    metrics = HostMetrics()
    clock = iter(float(t) for t in range(1000))
    history = History(metrics, interval=0.01, clock=lambda: next(clock))

    async def main() -> None:
        history.start()
        for _ in range(100):
            _serve(metrics, "live", 200, 0.002)
            await asyncio.sleep(0.01)
            if len(history.points("live")) >= 3:
                break
        history.stop()

    asyncio.run(main())
    points = history.points("live")
    assert len(points) >= 3 and sum(p.requests for p in points) >= 3
