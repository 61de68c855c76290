"""The host's access log: one JSON line per service call on stderr, refusals included.

A call a worker answered is written by the invoker itself (inlined: it is the hot path). A
call the host refused before any worker saw it — 404 unknown service or endpoint, 401/403,
413, 503 ``overloaded``/``unavailable``/``poison_request`` — is written here, in the same
shape plus its ``reason`` (the error type) and ``"replica": null``::

    {"ts": 1733390000.123456, "service": "ranker", "endpoint": "home", "status": 503,
     "ms": 0.041, "replica": null, "bytes_in": 0, "bytes_out": 92, "reason": "overloaded"}

A flood of refusals must not become a flood of log lines (the log is what an operator reads
during the flood): each reason writes at most 50 lines a second, and then, once that second
is over, one line with how many it left out::

    {"ts": 1733390001.000120, "reason": "overloaded", "suppressed": 18236, "seconds": 1.0}
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable

#: lines a second each refusal reason may write
PER_SECOND = 50


def _stderr(line: bytes) -> None:
    # straight to fd 2, as the invoker's own lines: no logging-module cost, no reordering
    os.write(2, line)


class _Second:
    __slots__ = ("lines", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.lines = 0
        self.suppressed = 0


class RefusalLog:
    """Writes refused calls, at most ``per_second`` lines a second per reason.

    ``clock`` (monotonic seconds) measures the seconds, ``wall`` stamps the lines and
    ``write`` takes each line (default: stderr). The count of a second's suppressed lines is
    written by the first refusal after that second, or by :meth:`flush`, which the event
    loop calls when the second ends (when there is a running loop).
    """

    def __init__(
        self,
        *,
        per_second: int = PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        write: Callable[[bytes], None] = _stderr,
    ) -> None:
        self.per_second = per_second
        self.clock = clock
        self.wall = wall
        self.write = write
        self._seconds: dict[str, _Second] = {}
        self._flush_due = False

    def refused(
        self,
        reason: str,
        *,
        service: str,
        endpoint: str,
        status: int,
        ms: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        """Log one refused call (or count it, past this second's lines for ``reason``)."""
        now = self.clock()
        second = self._seconds.get(reason)
        if second is None or now - second.start >= 1.0:
            if second is not None and second.suppressed:
                self._summary(reason, second.suppressed)
            second = self._seconds[reason] = _Second(now)
        if second.lines >= self.per_second:
            second.suppressed += 1
            self._schedule_flush(second.start + 1.0 - now)
            return
        second.lines += 1
        record = {
            "ts": round(self.wall(), 6),
            # unknown names are the caller's own bytes: escaped and cut to a sane length
            "service": service[:200],
            "endpoint": endpoint[:200],
            "status": status,
            "ms": round(ms, 3),
            "replica": None,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "reason": reason,
        }
        self.write((json.dumps(record) + "\n").encode())

    def flush(self) -> None:
        """Write the suppressed counts of the seconds that are over."""
        self._flush_due = False
        now = self.clock()
        pending = 0.0
        for reason, second in list(self._seconds.items()):
            left = second.start + 1.0 - now
            if left > 0:
                if second.suppressed:
                    pending = max(pending, left)
                continue
            del self._seconds[reason]
            if second.suppressed:
                self._summary(reason, second.suppressed)
        if pending:
            self._schedule_flush(pending)

    def _summary(self, reason: str, suppressed: int) -> None:
        record = {
            "ts": round(self.wall(), 6),
            "reason": reason,
            "suppressed": suppressed,
            "seconds": 1.0,
        }
        self.write((json.dumps(record) + "\n").encode())

    def _schedule_flush(self, delay: float) -> None:
        if self._flush_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a test driving the clock): the next refusal or flush() writes it
        self._flush_due = True
        loop.call_later(max(delay, 0.0) + 0.001, self.flush)


__all__ = ["PER_SECOND", "RefusalLog"]
