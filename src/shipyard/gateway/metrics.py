"""The gateway's Prometheus metrics. :class:`GatewayMetrics` (upstream attempts, reloads,
routes, admission failures) lives in a registry of its own (several gateways can live in one
process, as they do in tests); :class:`UsageMetrics` (requests, tokens, latency, refusals per
route and key, counted by ``shipyard.gateway.usage``) in the default registry unless one is
given. Labels are route names from the configuration and key labels, never what a caller sent,
so a caller cannot blow up their number."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_log = logging.getLogger("shipyard.gateway.usage")


class GatewayMetrics:
    """Upstream attempts, reloads, the number of routes, and the requests the admission failed
    on and let through (``shipyard_gateway_admission_failures_total``). Requests, tokens and
    latency per route and key are counted by the usage accounting (``shipyard.gateway.usage``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "shipyard_gateway_upstream_attempts",
            "Upstream attempts by route and outcome",
            ["route", "outcome"],
            registry=r,
        )
        self.rests = Counter(
            "shipyard_gateway_upstream_rested",
            "Requests not sent to a route because its upstream's 429 asked for a pause "
            "(they went to the fallbacks, or were answered 429), by route",
            ["route"],
            registry=r,
        )
        self.reloads = Counter(
            "shipyard_gateway_reloads",
            "Configuration reloads by outcome",
            ["outcome"],
            registry=r,
        )
        self.routes = Gauge("shipyard_gateway_routes", "Routes configured", registry=r)
        self.admission_failures = Counter(
            "shipyard_gateway_admission_failures",
            "Requests let through because the admission (limits, budgets) raised, by route",
            ["route"],
            registry=r,
        )
        self._attempts: dict[tuple[str, str], Any] = {}

    def attempt(self, route: str, outcome: str) -> None:
        """Count one upstream attempt (the labelled child is kept: labels() costs a lock)."""
        child = self._attempts.get((route, outcome))
        if child is None:
            child = self._attempts[(route, outcome)] = self.attempts.labels(route, outcome)
        child.inc()

    def rested(self, route: str) -> None:
        """Count one request kept off ``route`` while its upstream asked for a pause."""
        self.rests.labels(route).inc()

    def admission_failed(self, route: str) -> None:
        """Count one request admitted without its limits and budgets checked (fail open)."""
        self.admission_failures.labels(route).inc()

    def render(self) -> bytes:
        """This registry in Prometheus' text format."""
        return generate_latest(self.registry)


def _metric(kind: type[Any], name: str, doc: str, labels: list[str], **kw: Any) -> Any:
    """A metric, or None if the registry already has one of that name (the proxy may count
    ``shipyard_gateway_requests_total`` itself): a clash must not stop the gateway."""
    try:
        return kind(name, doc, labels, **kw)
    except ValueError:
        _log.warning("metric %s already exists in this registry; accounting skips it", name)
        return None


class UsageMetrics:
    """The accounting's Prometheus metrics in one registry (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.requests = _metric(
            Counter,
            "shipyard_gateway_requests_total",
            "Gateway requests by route, key label and HTTP status.",
            ["route", "key", "status"],
            registry=registry,
        )
        self.tokens = _metric(
            Counter,
            "shipyard_gateway_tokens_total",
            "Tokens reported by upstreams, by route, key label and direction (in/out).",
            ["route", "key", "direction"],
            registry=registry,
        )
        self.latency = _metric(
            Histogram,
            "shipyard_gateway_latency_seconds",
            "Gateway request latency in seconds (to the end of the response, streams included).",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.denied = _metric(
            Counter,
            "shipyard_gateway_denied_total",
            "Requests refused by a rate limit or a budget, by route and reason.",
            ["route", "reason"],
            registry=registry,
        )
        self.dropped = _metric(
            Counter,
            "shipyard_gateway_usage_dropped_total",
            "Requests left out of the usage tables because the metadata database was unreachable.",
            [],
            registry=registry,
        )


_metrics: weakref.WeakKeyDictionary[CollectorRegistry, UsageMetrics] = weakref.WeakKeyDictionary()
_metrics_lock = threading.Lock()


def usage_metrics(registry: CollectorRegistry | None = None) -> UsageMetrics:
    """The metrics in ``registry`` (default: prometheus_client's default registry), created
    once per registry, so several recorders (a config reload, tests) share them."""
    registry = REGISTRY if registry is None else registry
    with _metrics_lock:
        metrics = _metrics.get(registry)
        if metrics is None:
            metrics = _metrics[registry] = UsageMetrics(registry)
        return metrics


__all__ = ["GatewayMetrics", "UsageMetrics", "usage_metrics"]
