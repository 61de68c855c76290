"""The live progress line: elapsed, sent, rps, p50/p99 so far and errors, once a second.

On a terminal the line is rewritten in place; elsewhere (a CI log) a line is printed every
``every`` seconds instead, so a long run does not flood the log."""

from __future__ import annotations

from collections.abc import Callable

from shipyard.loadtest.histogram import Histogram
from shipyard.loadtest.results import Interval


class Progress:
    """Feed it each second's :class:`Interval`; it writes the line with ``write``."""

    def __init__(self, write: Callable[[str], None], *, tty: bool, every: int = 10) -> None:
        self.write = write
        self.tty = tty
        self.every = every
        self.sent = 0
        self.errors = 0
        self.seen = Histogram()
        self.shown = False

    def __call__(self, interval: Interval) -> None:
        self.sent += interval.sent
        if interval.second >= 0:
            self.errors += interval.errors
            self.seen.merge(interval.latency)
        line = self.line(interval)
        if self.tty:
            self.write("\r" + line.ljust(100))
            self.shown = True
        elif interval.second % self.every == 0 or interval.second < 0 and interval.second % 5 == 0:
            self.write(line + "\n")

    def line(self, interval: Interval) -> str:
        if interval.second < 0:
            when = f"ramp {-interval.second - 1}s left"
            latency = interval.latency
        else:
            when = f"{interval.second + 1:>4}s"
            latency = self.seen
        p50, p99 = latency.percentiles((50, 99))
        return (
            f"{when}  sent {self.sent:,}  rps {interval.responses / interval.span:,.0f}  "
            f"p50 {p50 / 1000:.2f} ms  p99 {p99 / 1000:.2f} ms  errors {self.errors:,}"
        )

    def finish(self) -> None:
        if self.shown:
            self.write("\n")


__all__ = ["Progress"]
