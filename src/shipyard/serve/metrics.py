"""The host's Prometheus metrics, in a registry of its own (several hosts can live in one
process, as they do in tests)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class HostMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shipyard_requests",
            "Service requests by outcome",
            ["service", "endpoint", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_request_seconds",
            "Service request latency at the front",
            ["service", "endpoint"],
            buckets=_LATENCY,
            registry=r,
        )
        self.batch_size = Histogram(
            "shipyard_batch_size",
            "Items in the batch a request ran in",
            ["service", "endpoint"],
            buckets=_BATCH,
            registry=r,
        )
        self.in_flight = Gauge(
            "shipyard_in_flight", "Requests in flight per service", ["service"], registry=r
        )
        self.replicas = Gauge(
            "shipyard_replicas",
            "Replicas per service and state",
            ["service", "state"],
            registry=r,
        )
        self.restarts = Counter(
            "shipyard_worker_restarts",
            "Worker processes restarted after they died",
            ["service"],
            registry=r,
        )
        self.oom_kills = Counter(
            "shipyard_replica_oom_kills",
            "Replicas killed over their memory limit (--memory), then restarted",
            ["service"],
            registry=r,
        )
        self.retirements = Counter(
            "shipyard_replica_retirements",
            "Replicas retired (a call overran its timeout, or health pings went unanswered) "
            "and replaced",
            ["service"],
            registry=r,
        )
        self.resent = Counter(
            "shipyard_requests_resent",
            "Requests sent again to another replica because theirs did not start them "
            "(it was retiring or stopping)",
            ["service"],
            registry=r,
        )
        self.unresponsive = Gauge(
            "shipyard_replicas_unresponsive",
            "Ready replicas whose health ping has gone unanswered past the ping timeout",
            ["service"],
            registry=r,
        )
        self._endpoints: dict[tuple[str, str], EndpointMetrics] = {}
        self.poison_requests = Counter(
            "shipyard_poison_requests",
            "Requests refused (503 poison_request) because the same request crashed workers",
            ["service", "endpoint"],
            registry=r,
        )
        self.poison_marked = Counter(
            "shipyard_poison_hashes_marked",
            "Requests (endpoint and body hashes) found crashing workers and refused since",
            ["service", "endpoint"],
            registry=r,
        )
        #: set to the invoker's count of held hashes (a function: holds end by themselves)
        self.poison_hashes = Gauge(
            "shipyard_poison_hashes_held",
            "Requests (endpoint and body hashes) refused now because they crashed workers",
            registry=r,
        )
        #: set to the invoker's body budget (a function: read at each scrape)
        self.body_bytes = Gauge(
            "shipyard_body_bytes_held",
            "Bytes of request bodies admitted and not answered yet (--max-body-buffer)",
            registry=r,
        )
        self.rejected = Counter(
            "shipyard_rejected",
            "Requests refused: a service overloaded or down, the host's body buffer full "
            "(body_buffer), or a poison request",
            ["service", "reason"],
            registry=r,
        )

        # the scheduler's (serve/scheduling.py): counted by the scheduler of this host
        self.fires_skipped = Counter(
            "shipyard_schedule_fires_skipped",
            "Fire times (and events, finished upstream runs) of a schedule recorded as "
            "skipped, by reason: overlap, paused, missed, payload, deleted, other",
            ["schedule", "reason"],
            registry=r,
        )
        self.fires_queued = Counter(
            "shipyard_schedule_fires_queued",
            "Fire times of a schedule queued, by reason: overlap (overlap=queue), cap (the "
            "global cap on scheduled runs), backfill (--max-parallel)",
            ["schedule", "reason"],
            registry=r,
        )
        self.events = Counter(
            "shipyard_events_published",
            "Events published (read by this host's scheduler), by source: cli, api, "
            "registry, cache",
            ["source"],
            registry=r,
        )

    def endpoint(self, service: str, endpoint: str) -> EndpointMetrics:
        """The labelled children of one endpoint, looked up once (labels() is not free)."""
        found = self._endpoints.get((service, endpoint))
        if found is None:
            found = self._endpoints[(service, endpoint)] = EndpointMetrics(self, service, endpoint)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)


class EndpointMetrics:
    """One endpoint's children of the host's metrics."""

    def __init__(self, metrics: HostMetrics, service: str, endpoint: str) -> None:
        self.latency = metrics.latency.labels(service, endpoint)
        self.batch_size = metrics.batch_size.labels(service, endpoint)
        self._requests = metrics.requests
        self._labels = (service, endpoint)
        self._by_code: dict[int, Any] = {}

    def count(self, status: int) -> None:
        child = self._by_code.get(status)
        if child is None:
            child = self._by_code[status] = self._requests.labels(*self._labels, str(status))
        child.inc()
