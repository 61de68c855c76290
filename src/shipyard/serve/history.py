"""The host's recent traffic per service, in memory: what the UI's deployments charts draw.

Every ``interval`` seconds (10) :class:`History` reads the host's own Prometheus metrics
(:class:`~shipyard.serve.metrics.HostMetrics`: the requests counter, the refused-requests
counter and the latency histogram), subtracts the previous reading and appends one
:class:`Point` per service to a ring buffer of ``size`` points (360: one hour)::

    history = History(host.metrics)
    history.start()                     # inside the running event loop (the host's lifespan)
    history.points("ranker")            # [Point(at=..., rps=12.5, error_rate=0.0, ...), ...]
    history.stop()

A point holds requests per second, the error rate (answers with a 5xx status, plus requests
refused because the service was overloaded or down, over all requests; None without
requests) and the 50th and 99th latency percentiles in seconds, estimated from the histogram
buckets' increments as Prometheus' ``histogram_quantile`` does (linear within a bucket; None
without requests). Nothing is written anywhere: a restarted host starts an empty hour.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shipyard.serve.metrics import HostMetrics

log = logging.getLogger("shipyard.serve")

#: seconds between two samples
INTERVAL = 10.0
#: points kept per service: one hour at the default interval
SIZE = 360


@dataclass(frozen=True)
class Point:
    """One service's traffic over one sampling interval ending at ``at`` (UNIX time)."""

    at: float
    requests: int
    rps: float
    error_rate: float | None  # 0..1; None without requests
    p50: float | None  # seconds; None without requests
    p99: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "requests": self.requests,
            "rps": self.rps,
            "error_rate": self.error_rate,
            "p50": self.p50,
            "p99": self.p99,
        }


@dataclass
class _Reading:
    """Cumulative counts of one service at one moment."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] | None = None  # upper bound -> cumulative count

    def bucket(self, bound: float, value: float) -> None:
        if self.buckets is None:
            self.buckets = {}
        self.buckets[bound] = self.buckets.get(bound, 0.0) + value


def read(metrics: HostMetrics) -> dict[str, _Reading]:
    """The host's cumulative counts per service, summed over endpoints and codes."""
    found: dict[str, _Reading] = {}

    def reading(service: str) -> _Reading:
        return found.setdefault(service, _Reading())

    for name, labels, value in _samples(metrics.requests.collect()):
        if name.endswith("_total"):
            entry = reading(labels["service"])
            entry.requests += value
            if labels.get("code", "").startswith("5"):
                entry.errors += value
    for name, labels, value in _samples(metrics.rejected.collect()):
        if name.endswith("_total"):
            entry = reading(labels["service"])
            entry.requests += value
            entry.errors += value
    for name, labels, value in _samples(metrics.latency.collect()):
        if name.endswith("_bucket"):
            reading(labels["service"]).bucket(float(labels["le"]), value)
    return found


def _samples(families: Iterable[Any]) -> Iterable[tuple[str, dict[str, str], float]]:
    for family in families:
        for sample in family.samples:
            yield sample.name, sample.labels, float(sample.value)


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The ``q`` quantile of observations counted in cumulative ``buckets`` (upper bound ->
    count), interpolated linearly inside its bucket; observations beyond the last finite
    bound are reported at that bound. None without observations."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    finite = [b for b in bounds if b != float("inf")]
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return finite[-1] if finite else None
            inside = count - below
            if inside <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / inside
        lower, below = bound, count
    return finite[-1] if finite else None


def point(at: float, seconds: float, now: _Reading, before: _Reading | None) -> Point:
    """The point for the interval from ``before`` (None: nothing before) to ``now``."""
    before = before or _Reading()
    requests = max(0.0, now.requests - before.requests)
    errors = max(0.0, now.errors - before.errors)
    deltas = {
        bound: max(0.0, count - (before.buckets or {}).get(bound, 0.0))
        for bound, count in (now.buckets or {}).items()
    }
    return Point(
        at=at,
        requests=int(requests),
        rps=requests / seconds if seconds > 0 else 0.0,
        error_rate=errors / requests if requests else None,
        p50=quantile(0.5, deltas),
        p99=quantile(0.99, deltas),
    )


class History:
    """A ring buffer of :class:`Point` per service, sampled from ``metrics`` (see the module
    docstring). ``clock`` gives UNIX time (tests pass their own)."""

    def __init__(
        self,
        metrics: HostMetrics,
        *,
        interval: float = INTERVAL,
        size: int = SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.interval = interval
        self.size = size
        self.clock = clock
        self._series: dict[str, deque[Point]] = {}
        self._last: dict[str, _Reading] = {}
        self._last_at: float | None = None
        self._lock = threading.Lock()  # the UI reads from worker threads
        self._task: asyncio.Task[None] | None = None

    def sample(self, now: float | None = None) -> None:
        """Read the metrics and append one point per service (the first call only sets the
        baseline). Cheap: a walk over the host's request metrics."""
        at = self.clock() if now is None else now
        readings = read(self.metrics)
        with self._lock:
            if self._last_at is not None and at > self._last_at:
                seconds = at - self._last_at
                for service, reading in readings.items():
                    series = self._series.get(service)
                    if series is None:
                        series = self._series[service] = deque(maxlen=self.size)
                    series.append(point(at, seconds, reading, self._last.get(service)))
            self._last, self._last_at = readings, at

    def points(self, service: str, *, since: float | None = None) -> list[Point]:
        """The service's points, oldest first (those at or after ``since`` if given)."""
        with self._lock:
            found = list(self._series.get(service, ()))
        return found if since is None else [p for p in found if p.at >= since]

    def services(self) -> list[str]:
        """Services with at least one point, sorted."""
        with self._lock:
            return sorted(self._series)

    @property
    def last_sample(self) -> float | None:
        """When the last sample was taken (UNIX time), or None before the first."""
        return self._last_at

    # -- the background task ----------------------------------------------------------------
    def start(self) -> None:
        """Sample every ``interval`` seconds in a task of the running event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        """Cancel the sampling task (the points stay readable)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a sampling bug must never take the host down
                log.exception("could not sample the host's metrics for the UI's charts")
            await asyncio.sleep(self.interval)


__all__ = ["INTERVAL", "SIZE", "History", "Point", "point", "quantile", "read"]
