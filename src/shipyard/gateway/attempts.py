"""Sending one request upstream: the route, then its fallbacks in order, each with its
``retries`` and a jittered backoff.

Retried: connect errors, timeouts, 429 and 5xx (for ``service``/``http`` routes 429, 502,
503, 504 only: a 500 there is the service's own answer). Once a route answers anything else,
that answer is final. All failed: 504 if the last failure was a timeout, 429 if it was the
upstream's rate limit, else 502, with each route's reason.

A 429 is honoured (:mod:`shipyard.gateway.cooldown`): the upstream's wait (its
``Retry-After``, its rate-limit reset headers, else 1 s) is never cut short. A retry waits at
least that long; a wait longer than the route's ``max_backoff`` ends the route's retries (the
fallbacks are tried at once); and the route rests for the wait, its requests going straight to
the fallbacks. A 429 answer carries ``Retry-After``: the soonest any of the rate-limited routes
will take a request again.
"""

from __future__ import annotations

import asyncio
import random
import time

from shipyard.gateway.cooldown import Cooldowns, asked_wait, header_value
from shipyard.gateway.errors import RequestError
from shipyard.gateway.exchange import Exchange, Refused, quietly
from shipyard.gateway.metrics import GatewayMetrics
from shipyard.gateway.model import Route
from shipyard.gateway.providers import Adapter, Call
from shipyard.gateway.routes import RouteTable
from shipyard.gateway.transport import Transport, UpstreamResponse
from shipyard.gateway.upstream_http import Request as UpstreamRequest
from shipyard.gateway.upstream_http import UpstreamError, UpstreamTimeout

_LLM_RETRY = frozenset({429, 500, 502, 503, 504})
_PLAIN_RETRY = frozenset({429, 502, 503, 504})


async def send(
    ex: Exchange,
    table: RouteTable,
    route: Route,
    call: Call,
    *,
    metrics: GatewayMetrics,
    max_body: int,
    cooldowns: Cooldowns,
) -> tuple[UpstreamResponse, Adapter]:
    """Try ``route`` then its fallbacks; the first final answer, or Refused(502/504/429)."""
    failures: list[str] = []
    last = 502
    free_at: list[float] = []  # when each rate-limited route takes requests again (monotonic)
    for target in table.chains[route.name]:
        what = "route" if target is route else "fallback"
        adapter = table.adapters[target.name]
        try:
            request = adapter.request(call)
        except RequestError as exc:
            if target is route:
                raise Refused(
                    exc.status,
                    exc.message,
                    param=exc.param,
                    kind=None if ex.surface == "openai" else "bad_request",
                ) from None
            failures.append(f"fallback {target.name!r} cannot take this request: {exc.message}")
            continue
        resting = cooldowns.remaining(target.name)
        if resting > 0:
            metrics.rested(target.name)
            free_at.append(time.monotonic() + resting)
            last = 429
            failures.append(
                f"{what} {target.name!r}: its upstream asked for a pause "
                f"({resting:.1f} s more; not tried)"
            )
            continue
        tried = _Tries(ex, target, metrics, max_body, cooldowns)
        response = await tried.run(table.transports[target.upstream.origin], request)
        if response is not None:
            ex.route = target
            return response, adapter
        last = tried.status
        failures.append(f"{what} {target.name!r}: {tried.why}")
        if tried.free_at is not None:
            free_at.append(tried.free_at)
    verb = {504: "timed out", 429: "is rate-limited"}.get(last, "failed")
    headers = None
    if last == 429 and free_at:
        headers = {"retry-after": header_value(min(free_at) - time.monotonic())}
    raise Refused(
        last,
        f"the upstream of route {route.name!r} {verb}: " + "; ".join(failures),
        kind={504: "timeout", 429: "rate_limit_exceeded"}.get(last, "bad_gateway"),
        headers=headers,
    )


class _Tries:
    """One route's attempts at a request: :meth:`run` returns its final answer, or None with
    ``status`` (429, 502 or 504), ``why``, and ``free_at`` (when a 429 asked it to rest)."""

    def __init__(
        self,
        ex: Exchange,
        route: Route,
        metrics: GatewayMetrics,
        max_body: int,
        cooldowns: Cooldowns,
    ) -> None:
        self.ex, self.route, self.metrics = ex, route, metrics
        self.max_body, self.cooldowns = max_body, cooldowns
        self.status, self.why = 502, "not tried"
        self.free_at: float | None = None

    async def run(self, transport: Transport, request: UpstreamRequest) -> UpstreamResponse | None:
        route, metrics = self.route, self.metrics
        retry = _LLM_RETRY if route.type.openai else _PLAIN_RETRY
        delay = 0.0
        tries = 0
        for attempt in range(route.retries.attempts + 1):
            if attempt:
                await asyncio.sleep(backoff(route, attempt, delay))
            self.ex.attempts += 1
            tries += 1
            delay = 0.0
            try:
                response = await transport.send(request)
            except UpstreamTimeout:
                metrics.attempt(route.name, "timeout")
                self.status, why = 504, f"no answer within {route.timeout:g} s"
            except UpstreamError as exc:
                metrics.attempt(route.name, "unreachable")
                self.status, why = 502, f"unreachable ({type(exc).__name__})"
            else:
                status = response.status_code
                if status not in retry:
                    metrics.attempt(route.name, "answered")
                    return response
                metrics.attempt(route.name, str(status))
                delay = asked_wait(response.headers) if status == 429 else retry_after(response)
                with quietly():
                    await asyncio.wait_for(response.read(self.max_body), 5)
                await response.aclose()
                self.status = 429 if status == 429 else 502
                why = f"answered HTTP {status}"
                if status == 429:
                    self.cooldowns.rest(route.name, delay)
                    self.free_at = time.monotonic() + delay
                    why += f", asking for {delay:g} s"
                    if delay > route.retries.max_backoff:
                        break  # longer than this route may wait: on to the fallbacks
        self.why = f"{why} ({tries} attempt{'s' if tries > 1 else ''})"
        return None


def retry_after(response: UpstreamResponse) -> float:
    """The upstream's Retry-After in seconds (0 if none or not a number of seconds)."""
    value = response.headers.get("retry-after")
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def backoff(route: Route, attempt: int, retry_after: float) -> float:
    """Exponential backoff with jitter (half fixed, half random), at least the upstream's
    Retry-After when that fits under ``max_backoff``."""
    r = route.retries
    base = min(r.max_backoff, r.backoff * 2.0 ** (attempt - 1))
    delay = base / 2 + random.uniform(0, base / 2)
    if retry_after <= r.max_backoff:
        delay = max(delay, retry_after)
    return delay


__all__ = ["backoff", "retry_after", "send"]
