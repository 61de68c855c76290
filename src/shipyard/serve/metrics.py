"""The host's Prometheus metrics, in a registry of its own (several hosts can live in one
process, as they do in tests)."""

from __future__ import annotations

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
        self.rejected = Counter(
            "shipyard_rejected",
            "Requests refused because a service was overloaded or down",
            ["service", "reason"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
