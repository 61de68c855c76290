"""The gateway's real :class:`~shipyard.gateway.hooks.Admission`: limits, budgets, usage.

>>> admission = make_admission(meta, config)                       # doctest: +SKIP
>>> denied = admission.admit(key, route, estimated_tokens=512)      # doctest: +SKIP
>>> admission.record(key, route, status=200, latency_ms=85.0, tokens_in=40, tokens_out=300,
...                  streamed=False)                                # doctest: +SKIP
>>> admission.close()                                               # doctest: +SKIP

``admit`` checks the key's budgets (:mod:`.budgets`), then the route's and the key's rate
limits (:mod:`.limits`), and reserves ``estimated_tokens``. A refusal is a
:class:`~shipyard.gateway.hooks.Denied` (429) with ``kind`` ``rate_limit_exceeded`` or
``insufficient_quota`` (a budget) and ``retry_after`` in whole seconds; it is counted in the
usage (``denied``) and in ``shipyard_gateway_denied_total`` by the ``record(status=429)``
the proxy makes for the refused request, with nothing reserved or spent. Every request the
proxy answers gets exactly one ``record`` (with the route that answered, maybe a fallback),
admitted or not; one that never reached ``admit`` (a malformed body, no key) settles no
reservation of its own. Neither method does I/O; ``record`` never raises, and should ``admit``
(a bug), the proxy fails open: the request goes through and
``shipyard_gateway_admission_failures_total`` counts it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.gateway.budgets import DEFAULT_REFRESH_SECONDS, BudgetView, cost
from shipyard.gateway.hooks import Admission, Denied, NoAdmission
from shipyard.gateway.limits import RateLimiter, RouteLimits, parse_limits
from shipyard.gateway.model import Route
from shipyard.gateway.usage import UsageRecorder, usage_metrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from sqlalchemy.engine import Engine

    from shipyard.keys import KeyRecord
    from shipyard.store.meta import MetaStore

_log = logging.getLogger(__name__)


class GatewayAdmission:
    """Rate limits and budgets at admission, usage accounting at the end of each request.

    ``clock`` (monotonic seconds) drives the token buckets and the budget refresh pacing,
    ``wall`` (aware UTC datetimes) the budget periods and the usage minutes; tests pass their
    own. ``start=False`` runs no writer thread: tests then call :meth:`flush`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        flush_seconds: float = 1.0,
        flush_records: int = 1000,
        max_rows: int = 10_000,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        start: bool = True,
    ) -> None:
        self.limiter = RateLimiter(clock)
        self.budgets = BudgetView(engine, refresh_seconds=refresh_seconds, wall=wall, clock=clock)
        self.usage = UsageRecorder(
            engine,
            flush_seconds=flush_seconds,
            flush_records=flush_records,
            max_rows=max_rows,
            wall=wall,
            on_flush=self._after_flush,
            metrics=usage_metrics(registry),
            start=start,
        )
        self._limits: dict[str, tuple[Mapping[str, Any], RouteLimits]] = {}
        self._lock = threading.Lock()
        self._denied: dict[tuple[int, str], deque[str]] = {}

    def _after_flush(self, committed: Mapping[Any, tuple[int, float]]) -> None:
        self.budgets.committed(committed)
        self.budgets.refresh()

    def limits_of(self, route: Route) -> RouteLimits:
        """The route's parsed limits, re-parsed only when a reload gave it new ones."""
        cached = self._limits.get(route.name)
        if cached is not None and cached[0] is route.limits:
            return cached[1]
        parsed = parse_limits(route.name, route.limits)
        self._limits[route.name] = (route.limits, parsed)
        return parsed

    def check_routes(self, routes: Iterable[Route]) -> None:
        """Parse every route's limits now (raises :class:`~.limits.LimitsError`)."""
        for route in routes:
            self.limits_of(route)

    # --- the Admission protocol -----------------------------------------------------------
    def admit(self, key: KeyRecord, route: Route, *, estimated_tokens: int) -> Denied | None:
        """None to let the request through (its tokens are reserved), or a 429.

        A bug here raises: the proxy then lets the request through and counts it in
        ``shipyard_gateway_admission_failures_total`` (see :mod:`shipyard.gateway.hooks`).
        """
        budget = self.budgets.check(key.key_id, key.label, priced=route.prices is not None)
        if budget is not None:
            return self._deny(key, route, budget.reason, "insufficient_quota",
                              budget.message, budget.retry_after)  # fmt: skip
        refusal = self.limiter.admit(
            route.name, key.key_id, self.limits_of(route), estimated_tokens=estimated_tokens
        )
        if refusal is None:
            return None
        return self._deny(key, route, refusal.reason, "rate_limit_exceeded",
                          refusal.message, refusal.retry_after)  # fmt: skip

    def _deny(
        self, key: KeyRecord, route: Route, reason: str, kind: str, message: str, wait: float
    ) -> Denied:
        # counted by the record() the proxy makes for the refused request (status 429)
        with self._lock:
            self._denied.setdefault((key.key_id, route.name), deque()).append(reason)
        return Denied(
            status=429, kind=kind, message=message, retry_after=float(max(1, math.ceil(wait)))
        )

    def _denial(self, key_id: int, route: str) -> str | None:
        with self._lock:
            reasons = self._denied.get((key_id, route))
            if not reasons:
                return None
            reason = reasons.popleft()
            if not reasons:
                del self._denied[(key_id, route)]
            return reason

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
        """Settle the request's token reservation and count it (no I/O, never raises)."""
        try:
            denied = self._denial(key.key_id, route.name) if key and status == 429 else None
            if denied is not None:  # refused by admit(): nothing reserved, nothing spent
                self.usage.add(route.name, key.key_id if key else None, key.label if key else None,
                               status=status, latency_ms=latency_ms, tokens_in=None,
                               tokens_out=None, streamed=False, cost=0.0,
                               denied=denied)  # fmt: skip
                return
            tokens: int | None = None
            if tokens_in is not None or tokens_out is not None:
                tokens = (tokens_in or 0) + (tokens_out or 0)
            elif status >= 400:
                tokens = 0  # failed without usage: give the reservation back
            spent = cost(route.prices, tokens_in, tokens_out)
            key_id = key.key_id if key is not None else None
            charged = self.limiter.settle(route.name, key_id, tokens)
            self.usage.add(route.name, key_id, key.label if key is not None else None,
                           status=status, latency_ms=latency_ms, tokens_in=tokens_in,
                           tokens_out=tokens_out, streamed=streamed, cost=spent,
                           charged=charged)  # fmt: skip
            if key is not None:
                self.budgets.spend(key.key_id, charged, spent)
        except Exception:
            _log.exception("gateway usage accounting failed for route %r", route.name)

    # --- life cycle -----------------------------------------------------------------------
    def flush(self) -> None:
        """Write pending usage now and refresh the budgets (on the calling thread)."""
        self.usage.flush()
        self.budgets.refresh(force=True)

    def close(self) -> None:
        """Stop the writer thread after writing everything pending."""
        self.usage.close()


def make_admission(
    meta: MetaStore,
    routes_config: Any = None,
    *,
    registry: CollectorRegistry | None = None,
    **options: Any,
) -> GatewayAdmission:
    """The Admission the gateway and the host use: usage and budgets in ``meta``'s database,
    metrics in ``registry`` (default: prometheus_client's). ``routes_config`` (a
    ``GatewayConfig``, optional) has its routes' limits checked now; ``options`` go to
    :class:`GatewayAdmission`. The budgets are read once before this returns."""
    admission = GatewayAdmission(meta.engine, registry=registry, **options)
    routes = getattr(routes_config, "routes", None)
    if routes is not None:
        admission.check_routes(routes.values() if isinstance(routes, Mapping) else routes)
    admission.budgets.refresh(force=True)
    return admission


def default_admission(
    meta: MetaStore | None = None, registry: CollectorRegistry | None = None
) -> Admission:
    """The Admission the gateway uses when none is passed in.

    ``meta`` is the metadata store (usage rows go there); ``registry`` is the Prometheus
    registry that the gateway's ``/metrics`` renders. If the object returned has an
    ``async close()`` (or a plain ``close()``), the gateway calls it at shut-down. With a
    metadata store: limits, budgets and usage accounting (:func:`make_admission`); without
    one: :class:`~shipyard.gateway.hooks.NoAdmission`.
    """
    if meta is None:
        return NoAdmission()
    return make_admission(meta, None, registry=registry)


__all__ = ["GatewayAdmission", "default_admission", "make_admission"]
