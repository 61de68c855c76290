"""The gateway's Prometheus metrics, in a registry of its own (several gateways can live in
one process, as they do in tests). Labels are route names from the configuration, never
what a caller sent, so a caller cannot blow up their number."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class GatewayMetrics:
    """Upstream attempts, reloads and the number of routes. Requests, tokens and latency per
    route and key are counted by the usage accounting (``shipyard.gateway.usage``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "shipyard_gateway_upstream_attempts",
            "Upstream attempts by route and outcome",
            ["route", "outcome"],
            registry=r,
        )
        self.reloads = Counter(
            "shipyard_gateway_reloads",
            "Configuration reloads by outcome",
            ["outcome"],
            registry=r,
        )
        self.routes = Gauge("shipyard_gateway_routes", "Routes configured", registry=r)
        self._attempts: dict[tuple[str, str], Any] = {}

    def attempt(self, route: str, outcome: str) -> None:
        """Count one upstream attempt (the labelled child is kept: labels() costs a lock)."""
        child = self._attempts.get((route, outcome))
        if child is None:
            child = self._attempts[(route, outcome)] = self.attempts.labels(route, outcome)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["GatewayMetrics"]
