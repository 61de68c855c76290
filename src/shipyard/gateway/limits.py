"""Rate limits: requests and tokens per minute (or per day), per route and per key on a route.

A route's ``limits`` in the gateway YAML::

    limits:
      requests_per_minute: 600        # the whole route, all keys together
      tokens_per_minute: 200000
      per_key:                        # each key on its own, on this route
        requests_per_minute: 60
        tokens_per_minute: 20000
        tokens_per_day: 1000000       # *_per_day: a rolling 24 h bucket, not a calendar day

Every number is optional (absent: no limit of that kind). Each limit is a token bucket that
holds one window's allowance and refills continuously (``n / 60`` per second for a minute),
read from a monotonic clock, so a quiet key may burst up to a window's worth at once. Calendar
quotas (per UTC day / month, shared by all processes) are budgets: :mod:`.budgets`.

Tokens are not counted before the upstream answers: :meth:`RateLimiter.admit` reserves an
estimate (``max_tokens``, or the prompt's length / 4) and :meth:`RateLimiter.settle` replaces
it with the upstream's ``usage`` once known; a bucket may go below zero when the answer was
larger than the estimate, and then refuses requests until it has refilled. An estimate larger
than a bucket's whole window only needs a full bucket (else it could never pass).

Limits are in-process: with N gateway processes, a route allows up to N times its limit (give
each process ``limit / N``, or run one gateway process; this keeps the request path free of I/O).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shipyard.gateway.errors import ConfigError

#: the limits a route's ``limits:`` mapping may hold (``per_key:`` holds the same), with the
#: window of each in seconds
WINDOWS = {
    "requests_per_minute": 60.0,
    "tokens_per_minute": 60.0,
    "requests_per_day": 86400.0,
    "tokens_per_day": 86400.0,
}
LIMIT_FIELDS = tuple(WINDOWS)
_TOKEN_FIELDS = tuple(name for name in LIMIT_FIELDS if name.startswith("tokens_"))
#: key x route buckets kept before idle (full) ones are forgotten
MAX_KEY_BUCKETS = 10_000


class LimitsError(ConfigError, ValueError):
    """A route's ``limits`` (or ``prices``) mapping is malformed; the message names the route,
    the field and the fix. A :class:`~shipyard.gateway.errors.ConfigError` not tied to a file
    line (the mapping came from code), and a ValueError as it always was."""

    def __init__(self, message: str, *, route: str) -> None:
        super().__init__("", None, message)
        self.route = route


@dataclass(frozen=True)
class Rates:
    """Limits by field name (``requests_per_minute``...); absent: unlimited."""

    limits: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class RouteLimits:
    """A route's parsed ``limits``: for the route as a whole and for each key on it."""

    route: Rates = Rates()
    per_key: Rates = Rates()

    @property
    def empty(self) -> bool:
        return not self.route.limits and not self.per_key.limits


def _rates(route: str, where: str, raw: Mapping[str, Any], allowed: tuple[str, ...]) -> Rates:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise LimitsError(
            f"route {route!r}: unknown field {unknown[0]!r} in {where}; use {', '.join(allowed)}",
            route=route,
        )
    limits: list[tuple[str, float]] = []
    for name in LIMIT_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise LimitsError(
                f"route {route!r}: {where}.{name} is {value!r}; give a positive number "
                "(or leave it out for no limit)",
                route=route,
            )
        limits.append((name, float(value)))
    return Rates(tuple(limits))


def parse_limits(route: str, raw: Mapping[str, Any] | None) -> RouteLimits:
    """Check and parse a route's ``limits`` mapping (None or ``{}``: no limits).

    >>> raw = {"requests_per_minute": 600, "per_key": {"tokens_per_minute": 9000}}
    >>> limits = parse_limits("chat", raw)
    >>> limits.route.limits, limits.per_key.limits
    ((('requests_per_minute', 600.0),), (('tokens_per_minute', 9000.0),))

    Raises :class:`LimitsError` naming the route and the field.
    """
    if raw is None:
        return RouteLimits()
    if not isinstance(raw, Mapping):
        raise LimitsError(
            f"route {route!r}: limits must be a mapping such as "
            f"{{requests_per_minute: 600}}, got {raw!r}",
            route=route,
        )
    per_key = raw.get("per_key") or {}
    if not isinstance(per_key, Mapping):
        raise LimitsError(
            f"route {route!r}: limits.per_key must be a mapping such as "
            f"{{requests_per_minute: 60}}, got {per_key!r}",
            route=route,
        )
    return RouteLimits(
        route=_rates(route, "limits", raw, (*LIMIT_FIELDS, "per_key")),
        per_key=_rates(route, "limits.per_key", per_key, LIMIT_FIELDS),
    )


def check_limits(
    limits: Mapping[str, Any], *, per_key: bool = True
) -> tuple[tuple[str, ...], str] | None:
    """Why ``limits`` is invalid, as (the path of the bad field, the reason); None if valid.

    The configuration reader's check, which names the line of the bad field;
    :func:`parse_limits` is the same check for a mapping given in code. ``per_key`` says
    whether a ``per_key:`` mapping may be in ``limits`` (not inside another one).
    """
    for name, value in limits.items():
        if name == "per_key" and per_key and isinstance(value, Mapping):
            bad = check_limits(value, per_key=False)
            if bad is not None:
                return (name, *bad[0]), bad[1]
            continue
        if name not in WINDOWS:
            known = ", ".join(sorted({*LIMIT_FIELDS, *(["per_key"] if per_key else [])}))
            return (name,), f"unknown limit {name!r} (known: {known})"
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            return (name,), f"limit {name!r} must be a positive number, got {value!r}"
    return None


class TokenBucket:
    """``capacity`` units, refilled at ``capacity / window`` per second from ``clock``.

    Not thread-safe on its own: :class:`RateLimiter` holds a lock around it.
    """

    __slots__ = ("capacity", "window", "rate", "level", "stamp", "_clock")

    def __init__(self, capacity: float, window: float, clock: Callable[[], float]) -> None:
        self.capacity, self.window, self.rate = capacity, window, capacity / window
        self._clock = clock
        self.stamp = clock()
        self.level = capacity

    def resize(self, capacity: float) -> None:
        """Take a new limit (a config reload), keeping the current level within it."""
        self.refill()
        self.capacity, self.rate = capacity, capacity / self.window
        self.level = min(self.level, capacity)

    def refill(self) -> float:
        """Add what has accrued since the last call; the current level."""
        now = self._clock()
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.level

    def wait(self, amount: float) -> float:
        """Seconds until ``amount`` could be taken (0 if now); call :meth:`refill` first."""
        need = min(amount, self.capacity)
        if self.level >= need:
            return 0.0
        return (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        """Remove ``amount`` (the level may go below zero: a debt that refills)."""
        self.level -= amount

    def give(self, amount: float) -> None:
        """Put back ``amount`` (an over-estimate), never above the capacity."""
        self.level = min(self.capacity, self.level + amount)

    @property
    def full(self) -> bool:
        return self.refill() >= self.capacity


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: ``reason`` is ``route_`` or ``key_`` and the limit's field
    (``key_tokens_per_minute``); ``retry_after`` in seconds."""

    reason: str
    limit: float
    retry_after: float

    @property
    def message(self) -> str:
        scope, _, name = self.reason.partition("_")
        unit, _, window = name.split("_", 2)
        who = "this route" if scope == "route" else "this key on this route"
        return (
            f"rate limit of {self.limit:g} {unit} per {window} for {who} reached; "
            f"retry after {max(1, math.ceil(self.retry_after))} s"
        )


_Slot = tuple[str, str, int | None]  # reason, route, key_id (None: the route's own bucket)


class RateLimiter:
    """Every route's and every key x route's buckets, in this process.

    >>> limiter = RateLimiter()
    >>> limits = parse_limits("chat", {"per_key": {"requests_per_minute": 1}})
    >>> limiter.admit("chat", 7, limits, estimated_tokens=10) is None
    True
    >>> limiter.admit("chat", 7, limits, estimated_tokens=10).reason
    'key_requests_per_minute'

    Each admitted request must be settled exactly once (:meth:`settle`), which swaps its
    token estimate for the real count, possibly on another route (a fallback answered).
    Reservations are matched per key: the oldest on the answering route, else the oldest.
    Individual requests may be swapped; the totals are exact.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[_Slot, TokenBucket] = {}
        self._reserved: dict[int, deque[tuple[str, int]]] = {}

    def _bucket(self, slot: _Slot, limit: float, window: float) -> TokenBucket:
        bucket = self._buckets.get(slot)
        if bucket is None:
            if slot[2] is not None and len(self._buckets) >= MAX_KEY_BUCKETS:
                self._forget_full()
            bucket = self._buckets[slot] = TokenBucket(limit, window, self._clock)
        elif bucket.capacity != limit:
            bucket.resize(limit)
        return bucket

    def _forget_full(self) -> None:
        # a full bucket is the same as no bucket: forgetting it loses nothing
        for slot in [s for s, b in self._buckets.items() if s[2] is not None and b.full]:
            del self._buckets[slot]

    def _active(
        self, route: str, key_id: int, limits: RouteLimits
    ) -> list[tuple[str, float, TokenBucket]]:
        active: list[tuple[str, float, TokenBucket]] = []
        for scope, rates, who in (("route", limits.route, None), ("key", limits.per_key, key_id)):
            for name, limit in rates.limits:
                reason = f"{scope}_{name}"
                bucket = self._bucket((reason, route, who), limit, WINDOWS[name])
                active.append((reason, limit, bucket))
        return active

    def admit(
        self, route: str, key_id: int, limits: RouteLimits, *, estimated_tokens: int
    ) -> Refusal | None:
        """Take one request and reserve ``estimated_tokens`` from every bucket that applies,
        or take nothing and return the refusal with the longest wait."""
        estimate = max(0, int(estimated_tokens))
        with self._lock:
            if not limits.empty:
                active = self._active(route, key_id, limits)
                worst: Refusal | None = None
                for reason, limit, bucket in active:
                    bucket.refill()
                    wait = bucket.wait(estimate if "_tokens_" in reason else 1)
                    if wait > 0 and (worst is None or wait > worst.retry_after):
                        worst = Refusal(reason, limit, wait)
                if worst is not None:
                    return worst
                for reason, _limit, bucket in active:
                    bucket.take(estimate if "_tokens_" in reason else 1)
            self._reserved.setdefault(key_id, deque()).append((route, estimate))
        return None

    def settle(self, route: str, key_id: int | None, tokens: int | None) -> int:
        """Replace a reservation of this key by ``tokens`` charged to ``route`` (None: keep
        the estimate as the charge); without a reservation, ``tokens`` is simply charged.
        Returns the tokens charged."""
        with self._lock:
            reserved_on, estimate = route, 0
            queue = self._reserved.get(key_id) if key_id is not None else None
            if queue:
                found = next((item for item in queue if item[0] == route), None)
                item = found if found is not None else queue[0]
                queue.remove(item)
                reserved_on, estimate = item
                if not queue and key_id is not None:
                    del self._reserved[key_id]
            charged = estimate if tokens is None else tokens
            if reserved_on == route:
                self._charge(route, key_id, charged - estimate)
            else:  # a fallback answered: the reservation moves to it
                self._charge(reserved_on, key_id, -estimate)
                self._charge(route, key_id, charged)
            return charged

    def _charge(self, route: str, key_id: int | None, amount: int) -> None:
        if amount == 0:
            return
        for name in _TOKEN_FIELDS:
            for slot in ((f"route_{name}", route, None), (f"key_{name}", route, key_id)):
                bucket = self._buckets.get(slot)
                if bucket is None or (slot[2] is None and slot[0].startswith("key_")):
                    continue
                bucket.refill()
                if amount > 0:
                    bucket.take(amount)
                else:
                    bucket.give(-amount)

    def level(self, reason: str, route: str, key_id: int | None = None) -> float | None:
        """A bucket's current level (for tests and debugging); None if it does not exist."""
        with self._lock:
            bucket = self._buckets.get((reason, route, key_id))
            return None if bucket is None else bucket.refill()

    def in_flight(self, key_id: int) -> int:
        """Admitted requests of this key not settled yet."""
        with self._lock:
            return len(self._reserved.get(key_id, ()))


__all__ = [
    "LIMIT_FIELDS",
    "MAX_KEY_BUCKETS",
    "WINDOWS",
    "LimitsError",
    "RateLimiter",
    "Rates",
    "Refusal",
    "RouteLimits",
    "TokenBucket",
    "check_limits",
    "parse_limits",
]
