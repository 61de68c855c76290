"""How long an upstream that answered 429 asked the gateway to wait (:func:`asked_wait`), and
the routes resting until then (:class:`Cooldowns`).

The wait is read, in this order, from:

1. ``retry-after-ms`` (milliseconds; OpenAI sends it, and its clients read it first);
2. ``Retry-After``: seconds, or an HTTP date;
3. the rate-limit reset headers of OpenAI (``x-ratelimit-reset-requests`` /
   ``-tokens``, durations such as ``6m0s`` or ``20ms``) and Anthropic
   (``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset``, RFC 3339
   times): the latest reset of the limits whose ``-remaining`` is 0, or, when none says so,
   the latest of them all — never sooner than the upstream could take a request again;
4. else :data:`DEFAULT_WAIT` (1 s): the smallest wait ``Retry-After`` can say in whole
   seconds, and about where OpenAI's and Anthropic's own clients start their backoff.

A wait is at most :data:`MAX_WAIT` (5 minutes), so a malformed or hostile header cannot take a
route out of service for longer than that; the route is asked again after it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

DEFAULT_WAIT = 1.0
MAX_WAIT = 300.0

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_OPENAI = ("requests", "tokens")
_ANTHROPIC = ("requests", "tokens", "input-tokens", "output-tokens")


def asked_wait(headers: Mapping[str, str], now: float | None = None) -> float:
    """Seconds the upstream of a 429 asked for (headers lower-cased; ``now``: UNIX time)."""
    now = time.time() if now is None else now
    wait = _retry_after(headers, now)
    if wait is None:
        wait = _reset(headers, now)
    if wait is None:
        wait = DEFAULT_WAIT
    return min(max(wait, 0.0), MAX_WAIT)


def header_value(seconds: float) -> str:
    """A ``Retry-After`` value for a wait: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        return parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError, IndexError):
        return None


def _reset(headers: Mapping[str, str], now: float) -> float | None:
    """The latest reset of the exhausted limits (else of all) the upstream named."""
    limits: list[tuple[bool, float]] = []
    for name in _OPENAI:
        seconds = _duration(headers.get(f"x-ratelimit-reset-{name}"))
        if seconds is not None:
            limits.append((headers.get(f"x-ratelimit-remaining-{name}") == "0", seconds))
    for name in _ANTHROPIC:
        at = _time(headers.get(f"anthropic-ratelimit-{name}-reset"))
        if at is not None:
            limits.append((headers.get(f"anthropic-ratelimit-{name}-remaining") == "0", at - now))
    exhausted = [seconds for spent, seconds in limits if spent]
    chosen = exhausted or [seconds for _, seconds in limits]
    return max(chosen) if chosen else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _duration(value: str | None) -> float | None:
    """``6m0s``, ``1.5s``, ``20ms``, ``1h2m`` (or plain seconds) as seconds."""
    if value is None:
        return None
    value = value.strip()
    number = _number(value)
    if number is not None:
        return number
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return at.timestamp() if at.tzinfo is not None else None


class Cooldowns:
    """Routes whose upstream asked for a pause, and until when (monotonic seconds).

    A route resting here is not sent requests: they go to its fallbacks, or are answered 429
    with the rest of the wait as ``Retry-After``. Kept by the proxy across reloads (by route
    name; a name that goes away simply expires).
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def rest(self, route: str, seconds: float) -> None:
        """Keep requests off ``route`` for ``seconds`` (a later end wins over an earlier)."""
        now = time.monotonic()
        for name in [n for n, end in self._until.items() if end <= now]:
            del self._until[name]
        end = now + seconds
        if end > self._until.get(route, 0.0):
            self._until[route] = end

    def remaining(self, route: str) -> float:
        """Seconds ``route`` still rests (0 if it does not)."""
        end = self._until.get(route)
        return 0.0 if end is None else max(0.0, end - time.monotonic())


__all__ = ["DEFAULT_WAIT", "MAX_WAIT", "Cooldowns", "asked_wait", "header_value"]
