"""What a load-test process measures: one :class:`Interval` a second (what the progress line,
the per-second CSV and the report's chart show), and its :class:`ProcessResult` at the end.
Both pickle small (sparse histograms), so worker processes send them to the parent, which
merges them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from shipyard.loadtest.histogram import Histogram


@dataclass
class Interval:
    """What finished during one second of the run. ``second`` counts from the start of the
    measurement: negative seconds are the ramp (``--ramp``), not measured."""

    second: int
    span: float = 1.0  # seconds covered (the last one may be shorter)
    sent: int = 0
    responses: int = 0
    #: latency from when each request should have started (the open model's schedule);
    #: in the closed model, from when it was sent
    latency: Histogram = field(default_factory=Histogram)
    #: the open model's latency from when each request was actually sent
    uncorrected: Histogram = field(default_factory=Histogram)
    #: open model: how late the client was in sending, per request
    lag: Histogram = field(default_factory=Histogram)
    statuses: Counter[int] = field(default_factory=Counter)  # error answers (>= 400)
    exceptions: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) + sum(self.exceptions.values())

    @property
    def requests(self) -> int:
        """Requests finished: answered, or failed without an answer."""
        return self.responses + sum(self.exceptions.values())

    def merge(self, other: Interval) -> Interval:
        """Add ``other`` (the same second, another process) to this one."""
        self.span = max(self.span, other.span)
        self.sent += other.sent
        self.responses += other.responses
        self.latency.merge(other.latency)
        self.uncorrected.merge(other.uncorrected)
        self.lag.merge(other.lag)
        self.statuses.update(other.statuses)
        self.exceptions.update(other.exceptions)
        return self


@dataclass
class ProcessResult:
    """One process's whole run: its measured totals and its own costs."""

    total: Interval
    cpu_seconds: float
    wall_seconds: float
    #: seconds from the start of measuring to the last request finished
    measured_seconds: float
    #: why sending stopped: "duration" or "max-requests"
    stopped_by: str
    connections_opened: int = 0
    max_queued: int = 0  # open model: most requests waiting at once for a connection

    @property
    def cpu_share(self) -> float:
        """The process's CPU time over its wall time: 1.0 is a whole core."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


__all__ = ["Interval", "ProcessResult"]
