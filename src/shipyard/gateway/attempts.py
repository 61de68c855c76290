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
from shipyard.gateway.transport import UpstreamResponse
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
        transport = table.transports[target.upstream.origin]
        retry = _LLM_RETRY if target.type.openai else _PLAIN_RETRY
        delay = 0.0
        tries = 0
        for attempt in range(target.retries.attempts + 1):
            if attempt:
                await asyncio.sleep(backoff(target, attempt, delay))
            ex.attempts += 1
            tries += 1
            delay = 0.0
            try:
                response = await transport.send(request)
            except UpstreamTimeout:
                metrics.attempt(target.name, "timeout")
                last, why = 504, f"no answer within {target.timeout:g} s"
            except UpstreamError as exc:
                metrics.attempt(target.name, "unreachable")
                last, why = 502, f"unreachable ({type(exc).__name__})"
            else:
                status = response.status_code
                if status not in retry:
                    metrics.attempt(target.name, "answered")
                    ex.route = target
                    return response, adapter
                metrics.attempt(target.name, str(status))
                delay = asked_wait(response.headers) if status == 429 else retry_after(response)
                with quietly():
                    await asyncio.wait_for(response.read(max_body), 5)
                await response.aclose()
                last = 429 if status == 429 else 502
                why = f"answered HTTP {status}"
                if status == 429:
                    cooldowns.rest(target.name, delay)
                    free_at.append(time.monotonic() + delay)
                    why += f", asking for {delay:g} s"
                    if delay > target.retries.max_backoff:
                        break  # longer than this route may wait: on to the fallbacks
        failures.append(
            f"{what} {target.name!r}: {why} ({tries} attempt{'s' if tries > 1 else ''})"
        )
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
