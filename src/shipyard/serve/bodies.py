"""The host's budget for request bodies (``shipyard serve --max-body-buffer``, 256 MB).

It counts the bytes of the service calls' bodies the host admitted and has not answered yet.
The host streams a body to its worker as it arrives, and the worker holds each whole body
while it runs, so the budget bounds the bodies the host and its workers hold together. A call
reserves its declared ``Content-Length`` before any byte of its body is read (a chunked body
reserves as its bytes arrive); a call that does not fit gets 503 ``overloaded`` with
``Retry-After``; the reservation is released when the call is answered, refused or abandoned.

glibc keeps the memory of freed bodies for reuse: once the budget falls back to empty after
it held more than :data:`TRIM_AFTER` bytes, ``malloc_trim(0)`` gives it back to the system,
from a timer (never on a request's path) and at most once a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from shipyard.serve._linux import malloc_trim

#: the bytes of request bodies the host holds at most, by default
MAX_BODY_BUFFER = 256 << 20
#: the budget must have held more than this since the last trim for an empty one to trim
TRIM_AFTER = 32 << 20
#: seconds between two trims at least
TRIM_INTERVAL = 1.0


class BodyBudget:
    """At most ``limit`` bytes of request bodies admitted and not yet answered.

    >>> budget = BodyBudget(1 << 20)
    >>> budget.reserve(800 << 10), budget.reserve(800 << 10)
    (True, False)
    >>> budget.release(800 << 10)
    >>> budget.held
    0

    ``trim`` (default: glibc's ``malloc_trim``) runs once the budget is empty again after
    it held more than ``trim_after`` bytes, from the running event loop's timer, at most once
    every ``trim_interval`` seconds.
    """

    def __init__(
        self,
        limit: int = MAX_BODY_BUFFER,
        *,
        trim_after: int = TRIM_AFTER,
        trim_interval: float = TRIM_INTERVAL,
        trim: Callable[[], object] = malloc_trim,
    ) -> None:
        self.limit = limit
        #: bytes reserved now
        self.held = 0
        #: how many trims ran (for tests and curiosity)
        self.trims = 0
        self.trim_after = trim_after
        self.trim_interval = trim_interval
        self._trim = trim
        self._peak = 0  # the most held since the last trim
        self._trimmed_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of the budget; False (and nothing taken) if they do not fit."""
        held = self.held + size
        if held > self.limit:
            return False
        self.held = held
        if held > self._peak:
            self._peak = held
        return True

    def release(self, size: int) -> None:
        """Give back ``size`` bytes a :meth:`reserve` took."""
        self.held -= size
        if self.held == 0 and self._peak > self.trim_after and self._timer is None:
            self._schedule_trim()

    def _schedule_trim(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test's direct call): trim now
            self._run_trim()
            return
        delay = max(0.0, self._trimmed_at + self.trim_interval - loop.time())
        self._timer = loop.call_later(delay, self._run_trim)

    def _run_trim(self) -> None:
        self._timer = None
        self._peak = self.held
        try:
            self._trimmed_at = asyncio.get_running_loop().time()
        except RuntimeError:
            pass
        self.trims += 1
        self._trim()


__all__ = ["MAX_BODY_BUFFER", "TRIM_AFTER", "BodyBudget"]
