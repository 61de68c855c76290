"""The seam between the proxy and limits / budgets / usage accounting.

The proxy calls :meth:`Admission.admit` once per request, after the key check and before
any upstream call (a :class:`Denied` becomes a 429 with ``Retry-After``), and
:meth:`Admission.record` once per finished request (after the last byte of a stream), with
the route that actually answered (a fallback route when the primary failed). ``record`` must
not block: implementations queue and write in batches off the request path.

If ``admit`` raises, the proxy lets the request through (fails open) and counts it in
``shipyard_gateway_admission_failures_total``: a bug in cost control must not take the
gateway down. :class:`NoAdmission` admits everything and records nothing (the gateway
without a metadata store); the real one, with limits, budgets and usage accounting, is
:class:`shipyard.gateway.admission.GatewayAdmission`
(:func:`~shipyard.gateway.admission.default_admission` picks between the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shipyard.gateway.model import Route

if TYPE_CHECKING:
    from shipyard.keys import KeyRecord


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


__all__ = ["Admission", "Denied", "NoAdmission"]
