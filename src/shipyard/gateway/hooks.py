"""The seam between the proxy and limits / budgets / usage accounting.

The proxy calls :meth:`Admission.admit` once per request, after the key check and before
any upstream call (a :class:`Denied` becomes a 429 with ``Retry-After``), and
:meth:`Admission.record` once per finished request (after the last byte of a stream), with
the route that actually answered (a fallback route when the primary failed). ``record`` must
not block: implementations queue and write in batches off the request path.

The defaults here admit everything and record nothing, so the gateway runs without the
accounting part; :func:`default_admission` is what the gateway and the host build, and
:func:`check_limits` is how the config loader validates a route's ``limits:`` mapping.
Both are meant to be replaced by the accounting part (``limits.py`` / ``usage.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from shipyard.gateway.config import Route
    from shipyard.keys import KeyRecord
    from shipyard.store.meta import MetaStore


@dataclass(frozen=True)
class Denied:
    """Why a request is refused before it reaches the upstream."""

    status: int = 429
    kind: str = "rate_limit_exceeded"
    message: str = "rate limit exceeded"
    retry_after: float | None = None


class Admission(Protocol):
    """Limits, budgets and usage accounting, as the proxy sees them."""

    def admit(self, key: KeyRecord, route: Route, *, estimated_tokens: int) -> Denied | None:
        """None to let the request through, or why not."""
        ...

    def record(
        self,
        key: KeyRecord | None,
        route: Route,
        *,
        status: int,
        latency_ms: float,
        tokens_in: int | None,
        tokens_out: int | None,
        streamed: bool,
    ) -> None:
        """Account one finished request (non-blocking)."""
        ...


class NoAdmission:
    """Admits everything, records nothing: the default until accounting is configured."""

    def admit(self, key: KeyRecord, route: Route, *, estimated_tokens: int) -> Denied | None:
        return None

    def record(
        self,
        key: KeyRecord | None,
        route: Route,
        *,
        status: int,
        latency_ms: float,
        tokens_in: int | None,
        tokens_out: int | None,
        streamed: bool,
    ) -> None:
        return None


def default_admission(
    meta: MetaStore | None = None, registry: CollectorRegistry | None = None
) -> Admission:
    """The Admission the gateway uses when none is passed in.

    ``meta`` is the metadata store (usage rows go there); ``registry`` is the Prometheus
    registry that the gateway's ``/metrics`` renders. If the object returned has an
    ``async close()`` (or a plain ``close()``), the gateway calls it at shut-down. With a
    metadata store: limits, budgets and usage accounting (``shipyard.gateway.admission``).
    """
    if meta is None:
        return NoAdmission()
    from shipyard.gateway.admission import make_admission

    return make_admission(meta, None, registry=registry)


#: numbers a route's ``limits:`` may hold (``per_key:`` may hold the same, per caller key)
LIMIT_FIELDS = frozenset(
    {"requests_per_minute", "tokens_per_minute", "requests_per_day", "tokens_per_day"}
)


def check_limits(limits: Mapping[str, Any]) -> tuple[tuple[str, ...], str] | None:
    """Why ``limits`` is invalid, as (the path of the bad field, the reason); None if valid."""
    for name, value in limits.items():
        if name == "per_key" and isinstance(value, Mapping):
            bad = check_limits(value)
            if bad is not None:
                return (name, *bad[0]), bad[1]
            continue
        if name not in LIMIT_FIELDS:
            known = ", ".join(sorted({*LIMIT_FIELDS, "per_key"}))
            return (name,), f"unknown limit {name!r} (known: {known})"
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            return (name,), f"limit {name!r} must be a positive number, got {value!r}"
    return None


__all__ = [
    "LIMIT_FIELDS",
    "Admission",
    "Denied",
    "NoAdmission",
    "check_limits",
    "default_admission",
]
