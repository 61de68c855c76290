"""Poison requests: a request that crashes the worker it runs on, every time.

Repeated by a caller, such a request takes a replica down again as soon as it is back, and
every other caller waits on 503s. The host keeps track: a request is known by
``sha256(service/endpoint, body)``, and once one was in flight on a worker at 2 crashes
within 60 s (and was never answered between them), the host refuses it for 10 minutes
with 503 ``poison_request`` instead of sending it to a worker again.

Attribution: when a worker crashes, the host cannot tell which of the requests in flight on
it did it, so each is a *suspect* of that crash. A request becomes poison only when it was a
suspect of 2 different crashes within the window: a bystander of one crash is never
refused, and two crashes share a bystander only when the same body was in flight at both.
That still happens when a load generator sends one body over and over, so a suspect that a
worker *answers* (any status: the worker survived it) is cleared: a poison request is never
answered. Crashes the host causes itself (a drain, a stop, a recycled worker) are not
counted.

Healthy traffic pays two truth tests while nothing is suspected or held, then a dict lookup by
``(service, endpoint, body length)``; the body is hashed only when that matches (or at a
crash, from the bytes each request in flight keeps). A body the host streamed to its worker
in parts is not kept: it is hashed as it streams (:func:`body_hasher`) and known by its
:class:`Digested` length and digest instead of its bytes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("shipyard.serve")

#: crashes, within ``WINDOW`` seconds, that make a request poison
CRASHES = 2
WINDOW = 60.0
#: seconds a poison request is refused
HOLD = 600.0
#: at most this many hashes are suspected, and as many held (the oldest go first)
LIMIT = 1024

_Key = tuple[str, str, int]


@dataclass(frozen=True)
class Digested:
    """A request body known by its length and digest (what :func:`body_hasher` made of it),
    not its bytes: a body the host streamed to the worker and did not keep."""

    length: int
    digest: str


#: a request body, by its bytes or by its digest
Body = bytes | Digested


def body_hasher(service: str, endpoint: str) -> hashlib._Hash:
    """The hash of a request to ``service/endpoint`` to feed its body to, part by part; its
    ``hexdigest()`` is the :class:`Digested` digest."""
    return hashlib.sha256(f"{service}/{endpoint}\n".encode())


@dataclass
class Held:
    """A request the host refuses until ``until`` (on the tracker's clock)."""

    service: str
    endpoint: str
    digest: str
    length: int  # of the body: the cheap half of the lookup
    crashes: int
    until: float

    def message(self, now: float) -> str:
        """What the caller is told: what is refused, why, for how long, and the fix."""
        return (
            f"this request to {self.service}/{self.endpoint} (body sha256 {self.digest[:16]}...) "
            f"crashed its worker {self.crashes} times within {WINDOW:g} s; the host refuses it "
            f"for {HOLD:g} s ({self.retry_after(now)} s left). Fix the endpoint, or send "
            "another request"
        )

    def retry_after(self, now: float) -> int:
        """Whole seconds until it is accepted again (at least 1)."""
        return max(1, math.ceil(self.until - now))


@dataclass
class _Suspect:
    key: _Key
    crashes: dict[int, float] = field(default_factory=dict)  # crash id -> when


class PoisonRequests:
    """The requests a host refuses because they crashed its workers.

    The invoker calls :meth:`crashed` for each request in flight on a worker that crashed,
    :meth:`answered` for an answered request while :attr:`suspecting`, and :meth:`refusal`
    before sending a request while :attr:`holding`. ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        *,
        crashes: int = CRASHES,
        window: float = WINDOW,
        hold: float = HOLD,
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.crashes = crashes
        self.window = window
        self.hold = hold
        self.limit = limit
        self.clock = clock
        self._held: dict[str, Held] = {}
        self._held_keys: dict[_Key, int] = {}
        self._suspects: dict[str, _Suspect] = {}
        self._suspect_keys: dict[_Key, int] = {}
        self._suspects_until = 0.0  # no suspect counts after this (the last crash + window)
        #: called with each request that becomes poison (the metrics count them)
        self.on_held: Callable[[Held], None] | None = None

    @property
    def holding(self) -> bool:
        """Whether any request is refused (until then :meth:`refusal` need not be asked)."""
        return bool(self._held)

    @property
    def suspecting(self) -> bool:
        """Whether any request is a suspect (until then :meth:`answered` need not be told)."""
        return bool(self._suspects)

    def refusal(self, service: str, endpoint: str, body: Body) -> Held | None:
        """The hold on this request, if it is refused now."""
        if self._held and next(iter(self._held.values())).until <= self.clock():
            self._expire()  # the first held ends first: all are held as long
        if (service, endpoint, _length(body)) not in self._held_keys:
            return None  # no hash: no held request has this endpoint and length
        digest = _digest(service, endpoint, body)
        held = self._held.get(digest)
        if held is None:
            return None
        if self.clock() >= held.until:
            self._release(digest)
            return None
        return held

    def answered(self, service: str, endpoint: str, body: Body) -> None:
        """A worker answered this request: it is not what crashes workers."""
        if self.clock() > self._suspects_until:
            self._suspects.clear()  # the last crash is older than the window
            self._suspect_keys.clear()
        elif (service, endpoint, _length(body)) in self._suspect_keys:
            self._clear(_digest(service, endpoint, body))

    def crashed(self, crash: int, service: str, endpoint: str, body: Body) -> Held | None:
        """This request was in flight on a worker that crashed (``crash`` names the crash:
        the replica's number); the hold it gets, if this makes it poison."""
        now = self.clock()
        digest = _digest(service, endpoint, body)
        suspect = self._suspects.get(digest)
        if suspect is None:
            if len(self._suspects) >= self.limit:
                self._clear(next(iter(self._suspects)))
            key = (service, endpoint, _length(body))
            suspect = self._suspects[digest] = _Suspect(key)
            self._suspect_keys[key] = self._suspect_keys.get(key, 0) + 1
        suspect.crashes[crash] = now
        self._suspects_until = now + self.window
        for other, when in list(suspect.crashes.items()):
            if now - when > self.window:
                del suspect.crashes[other]
        if len(suspect.crashes) < self.crashes:
            return None
        self._clear(digest)
        return self._hold(service, endpoint, digest, _length(body), now)

    def held_count(self) -> int:
        """How many requests are refused now (the gauge); it does not change the state, so
        that a scrape may read it from any thread."""
        now = self.clock()
        return sum(1 for held in list(self._held.values()) if held.until > now)

    def _hold(self, service: str, endpoint: str, digest: str, length: int, now: float) -> Held:
        self._expire()
        if digest in self._held:
            self._release(digest)  # held again from now: to the end, in the order they end
        elif len(self._held) >= self.limit:
            self._release(next(iter(self._held)))
        held = Held(service, endpoint, digest, length, self.crashes, now + self.hold)
        self._held[digest] = held
        key = (service, endpoint, length)
        self._held_keys[key] = self._held_keys.get(key, 0) + 1
        log.warning(
            "refusing requests to %s/%s with body sha256 %s for %g s: in flight at %d worker "
            "crashes within %g s (503 poison_request)",
            service,
            endpoint,
            digest,
            self.hold,
            self.crashes,
            self.window,
        )
        if self.on_held is not None:
            self.on_held(held)
        return held

    def _expire(self) -> None:
        now = self.clock()
        while self._held and next(iter(self._held.values())).until <= now:
            self._release(next(iter(self._held)))

    def _release(self, digest: str) -> None:
        held = self._held.pop(digest)
        _drop(self._held_keys, (held.service, held.endpoint, held.length))

    def _clear(self, digest: str) -> None:
        suspect = self._suspects.pop(digest, None)
        if suspect is not None:
            _drop(self._suspect_keys, suspect.key)


def _digest(service: str, endpoint: str, body: Body) -> str:
    if isinstance(body, Digested):
        return body.digest
    h = body_hasher(service, endpoint)
    h.update(body)
    return h.hexdigest()


def _length(body: Body) -> int:
    return body.length if isinstance(body, Digested) else len(body)


def _drop(counts: dict[_Key, int], key: _Key) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


__all__ = [
    "CRASHES",
    "HOLD",
    "LIMIT",
    "WINDOW",
    "Body",
    "Digested",
    "Held",
    "PoisonRequests",
    "body_hasher",
]
