"""The two load models, driven on one event loop in one process.

- **Open** (``rate``): request *i* should start at a fixed time whatever the answers do
  (``i / rate`` after the start, or along a linear ramp). It goes out on an idle keep-alive
  connection; when none is idle, a new one is opened (up to ``max_connections``) and the
  request waits for the first connection free. Its latency is measured twice: from when it
  *should* have started (corrected: a stalled server delays every request scheduled during
  the stall, and they all count) and from when it was written (uncorrected, what a closed
  client would see). How late the scheduler itself dispatched each request is the send lag:
  when it grows, the client, not the server, is the limit.
- **Closed** (``concurrency``): N connections, each sending its next request as soon as the
  previous answer arrives; latency from the write. A ramp opens the N connections evenly
  over it.

A ramp (``ramp`` seconds before the measurement) is never measured: a request counts only
if it started, or should have, after it; each second's :class:`Interval` holds the counted
requests that finished in that second.

Both stop sending at the end of the duration or at ``max_requests`` started, whichever is
first (or at Ctrl-C), then wait up to ``timeout`` for the answers in flight. A request with
no answer after ``timeout`` is a ``Timeout`` error and its connection is dropped.
"""

from __future__ import annotations

import asyncio
import math
import signal
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

from shipyard.loadtest.connection import Connection
from shipyard.loadtest.requests import Address
from shipyard.loadtest.results import Interval, ProcessResult

#: how often in-flight requests are checked against the timeout, in seconds (at most)
SWEEP_SECONDS = 0.1
#: requests the open model's scheduler dispatches back to back, when behind its schedule,
#: before it lets the event loop read answers and open connections
BURST = 64
#: the pause before a closed-model connection that could not connect tries again
RECONNECT_SECONDS = 0.01


@dataclass(frozen=True)
class Plan:
    """What one process sends. ``rate`` (open model) or ``concurrency`` (closed), never
    both; ``requests`` is the cycle of encoded requests; ``phase`` shifts this process's
    schedule (``--processes``: process *p* of *P* starts ``p / (P * rate)`` later, so the
    processes' sends interleave)."""

    address: Address
    requests: tuple[bytes, ...]
    duration: float
    max_requests: int
    rate: float | None = None
    concurrency: int | None = None
    ramp: float = 0.0
    timeout: float = 10.0
    max_connections: int = 1000
    phase: float = 0.0
    first_request: int = 0  # where in the cycle this process starts
    #: when to start, as a time.perf_counter() value (the system-wide monotonic clock on
    #: Linux, so processes share it); None: now
    start_at: float | None = None

    @property
    def open(self) -> bool:
        return self.rate is not None


def intended_offset(index: int, rate: float, ramp: float) -> float:
    """Seconds after the start at which request ``index`` should start: ``rate`` per second,
    reached along a linear ramp of ``ramp`` seconds (during which ``rate * ramp / 2``
    requests start)."""
    in_ramp = rate * ramp / 2
    if index < in_ramp:
        return math.sqrt(2 * index * ramp / rate)
    return ramp + (index - in_ramp) / rate


class Driver:
    """Runs one :class:`Plan` on the running event loop (see the module docstring)."""

    def __init__(self, plan: Plan, emit: Callable[[Interval], None] | None = None) -> None:
        self.plan = plan
        self.emit = emit
        self.loop = asyncio.get_running_loop()
        self.requests = plan.requests
        self.cursor = plan.first_request % len(plan.requests)
        self.connections: set[Connection] = set()
        self.idle: list[Connection] = []
        self.queued: deque[float] = deque()  # open model: intended times waiting for a connection
        self.connecting = 0
        self.started = 0
        self.sending = True
        self.stopped_by = "duration"
        self.opened = 0
        self.max_queued = 0
        self.wanted = 0  # closed model: connections to keep open
        self.last_done = 0.0  # when the last answer came
        self.ssl = ssl.create_default_context() if plan.address.scheme == "https" else None
        self.start = perf_counter()  # set again by run()
        self.measure_from = self.start
        self.current = Interval(second=0)
        self.total = Interval(second=0)
        #: ramp requests that finished after the ramp: counted nowhere
        self.ramp_late = Interval(second=-1)
        self.idle_event = asyncio.Event()

    # --- the run ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop sending now (Ctrl-C): the answers in flight are still waited for, and what
        was measured is reported."""
        if self.sending:
            self.sending = False
            self.stopped_by = "interrupted"
            self.idle_event.set()

    async def run(self) -> ProcessResult:
        plan = self.plan
        cpu0, wall0 = time.process_time(), perf_counter()
        self.start = (plan.start_at or perf_counter()) + plan.phase
        self.measure_from = self.start + plan.ramp
        end = self.measure_from + plan.duration
        self.current = Interval(second=self._second(self.start))
        ticker = self.loop.create_task(self._tick())
        sweeper = self.loop.create_task(self._sweep())
        try:
            if plan.open:
                await self._schedule(end)
            else:
                await self._closed(end)
            self.sending = False
            await self._drain()
        finally:
            ticker.cancel()
            sweeper.cancel()
            for conn in list(self.connections):
                conn.close(abort=True)
        last = perf_counter()
        self._roll(last)
        return ProcessResult(
            total=self.total,
            cpu_seconds=time.process_time() - cpu0,
            wall_seconds=last - wall0,
            measured_seconds=max(0.0, min(last, max(end, self.last_done)) - self.measure_from),
            stopped_by=self.stopped_by,
            connections_opened=self.opened,
            max_queued=self.max_queued,
        )

    async def _schedule(self, end: float) -> None:
        """The open model: dispatch each request at its time."""
        plan = self.plan
        rate = plan.rate or 1.0
        index = burst = 0
        while self.sending:
            if self.started >= plan.max_requests:
                self.stopped_by = "max-requests"
                return
            intended = self.start + intended_offset(index, rate, plan.ramp)
            if intended >= end:
                return
            now = perf_counter()
            if intended > now:
                await asyncio.sleep(intended - now)
                now = perf_counter()
                # uvloop's timers count whole milliseconds and may fire early: never send
                # before the time (the corrected latency would start after the send)
                while now < intended and self.sending:
                    await asyncio.sleep(intended - now - 1e-3 if intended - now > 2e-3 else 0)
                    now = perf_counter()
                if not self.sending:
                    return
                burst = 0
            else:
                burst += 1
                if burst >= BURST:  # behind schedule: still let the answers in now and then
                    burst = 0
                    await asyncio.sleep(0)
                    now = perf_counter()
            self.current.lag.record(int((now - intended) * 1e6))
            index += 1
            self.started += 1
            if self.idle:
                self._send(self.idle.pop(), intended)
                continue
            self.queued.append(intended)
            if len(self.queued) > self.max_queued:
                self.max_queued = len(self.queued)
            if len(self.connections) + self.connecting < plan.max_connections:
                self._connect()

    async def _closed(self, end: float) -> None:
        """The closed model: open the connections (spread over the ramp), then wait."""
        plan = self.plan
        count = plan.concurrency or 1
        for k in range(count):
            at = self.start + plan.ramp * k / count
            now = perf_counter()
            while at > now and self.sending:
                # uvloop's timers count whole milliseconds and may fire early: a connection
                # opened before the start would send a request that is measured nowhere
                await asyncio.sleep(at - now if at - now > 2e-3 else 0)
                now = perf_counter()
            if not self.sending:
                break
            self.wanted = k + 1
            self._connect()
        while self.sending:
            now = perf_counter()
            if now >= end:
                break
            await asyncio.sleep(min(end - now, 0.05))
        self.sending = False

    async def _drain(self) -> None:
        """Wait for the requests in flight (each is bounded by the timeout)."""
        deadline = perf_counter() + self.plan.timeout + 2 * SWEEP_SECONDS
        while self._in_flight() and perf_counter() < deadline:
            self.idle_event.clear()
            try:
                await asyncio.wait_for(self.idle_event.wait(), SWEEP_SECONDS)
            except TimeoutError:
                pass

    def _in_flight(self) -> bool:
        return bool(self.queued) or any(c.busy for c in self.connections)

    # --- connections -----------------------------------------------------------------------
    def _connect(self) -> None:
        self.connecting += 1
        self.loop.create_task(self._open())

    async def _open(self) -> None:
        """Open one connection. It stops counting as ``connecting`` in :meth:`on_ready`,
        not when this coroutine resumes: its answer (and close) may come first, and a
        refill made then must see it gone, or its slot is lost for good."""
        address = self.plan.address
        made: list[Connection] = []

        def factory() -> Connection:
            made.append(Connection(self))
            return made[-1]

        try:
            await asyncio.wait_for(
                self.loop.create_connection(factory, address.host, address.port, ssl=self.ssl),
                self.plan.timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            if not (made and made[0].transport is not None):  # on_ready never came
                self.connecting -= 1
            name = "ConnectTimeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            self._connect_failed(name)

    def _connect_failed(self, name: str) -> None:
        if self.plan.open:
            if self.queued:  # the request that wanted this connection fails with it
                self._failed(name, self.queued.popleft())
            if self.queued and not self.connections and not self.connecting:
                self._connect()
            return
        if self.sending and self.started < self.plan.max_requests:
            self.started += 1  # the attempt counts as a request: it failed
            self._failed(name)
            self.loop.call_later(RECONNECT_SECONDS, self._refill)
        else:
            self._wake()

    def _refill(self) -> None:
        """The closed model: keep ``concurrency`` connections open while sending."""
        if self.sending and self.started >= self.plan.max_requests:
            self.sending = False
            self.stopped_by = "max-requests"
        if not self.sending:
            self._wake()
            return
        while len(self.connections) + self.connecting < self.wanted:
            self._connect()

    # --- what a Connection reports ---------------------------------------------------------
    def on_ready(self, conn: Connection) -> None:
        self.connecting -= 1
        self.opened += 1
        self.connections.add(conn)
        self._next(conn)

    def _bucket(self, started: float) -> Interval:
        """Where a request that started (or should have) at ``started`` is counted: this
        second, unless it is a ramp request finishing after the ramp (never measured)."""
        if started >= self.measure_from or self.current.second < 0:
            return self.current
        return self.ramp_late

    def on_response(self, conn: Connection, status: int, done: float) -> None:
        interval = self._bucket(conn.intended)
        interval.responses += 1
        interval.latency.record(int((done - conn.intended) * 1e6))
        if self.plan.open:
            interval.uncorrected.record(int((done - conn.sent) * 1e6))
        if status >= 400:
            interval.statuses[status] += 1
        self.last_done = done
        if not conn.closed:
            self._next(conn)
        else:
            self._wake()

    def on_failure(self, conn: Connection, name: str) -> None:
        self._failed(name, conn.intended)

    def on_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if not self.sending:
            self._wake()
        elif self.plan.open:
            if self.queued and len(self.connections) + self.connecting < self.plan.max_connections:
                self._connect()
        else:
            self._refill()

    # --- sending ---------------------------------------------------------------------------
    def _next(self, conn: Connection) -> None:
        """Give a free connection its next request, or park (open) or close (closed) it."""
        if self.plan.open:
            if self.queued:
                self._send(conn, self.queued.popleft())
            elif self.sending:
                self.idle.append(conn)
            else:
                conn.close()
                self._wake()
            return
        if self.sending and self.started < self.plan.max_requests:
            self.started += 1
            self._send(conn, perf_counter())
            return
        if self.sending:
            self.stopped_by = "max-requests"
            self.sending = False
        conn.close()
        self._wake()

    def _send(self, conn: Connection, intended: float) -> None:
        request = self.requests[self.cursor]
        self.cursor += 1
        if self.cursor == len(self.requests):
            self.cursor = 0
        self.current.sent += 1
        conn.send(request, intended)
        if not self.plan.open:
            conn.intended = conn.sent  # closed model: no schedule, latency from the write

    def _failed(self, name: str, started: float | None = None) -> None:
        interval = self.current if started is None else self._bucket(started)
        interval.exceptions[name] += 1
        self._wake()

    def _wake(self) -> None:
        if not self.sending:
            self.idle_event.set()

    # --- the clock -------------------------------------------------------------------------
    def _second(self, at: float) -> int:
        return math.floor(at - self.measure_from)

    async def _tick(self) -> None:
        """Close each second's interval on the second (counted from the measurement start)."""
        while True:
            boundary = self.measure_from + self.current.second + 1
            now = perf_counter()
            if boundary > now:
                await asyncio.sleep(boundary - now)
            self._roll(perf_counter())

    def _roll(self, now: float) -> None:
        interval = self.current
        started_at = self.measure_from + interval.second
        interval.span = max(1e-3, min(1.0, now - started_at))
        self.current = Interval(second=max(interval.second + 1, self._second(now)))
        if interval.second >= 0:
            self.total.merge(interval)
        if self.emit is not None:
            self.emit(interval)

    async def _sweep(self) -> None:
        """Fail the requests that have waited longer than the timeout."""
        timeout = self.plan.timeout
        while True:
            await asyncio.sleep(min(SWEEP_SECONDS, timeout / 4))
            now = perf_counter()
            for conn in [c for c in self.connections if c.busy and now - c.sent > timeout]:
                conn.fail("Timeout")
            while self.queued and now - self.queued[0] > timeout:
                self._failed("Timeout", self.queued.popleft())


def run_plan(plan: Plan, emit: Callable[[Interval], None] | None = None) -> ProcessResult:
    """Run ``plan`` in this thread on a fresh event loop (uvloop where there is one)."""

    async def main() -> ProcessResult:
        driver = Driver(plan, emit)
        if threading.current_thread() is threading.main_thread():
            driver.loop.add_signal_handler(signal.SIGINT, driver.stop)
        try:
            return await driver.run()
        finally:
            if threading.current_thread() is threading.main_thread():
                driver.loop.remove_signal_handler(signal.SIGINT)

    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main())
    return uvloop.run(main())


__all__ = ["Driver", "Plan", "intended_offset", "run_plan"]
