"""A load test in one process, or spread over several (``--processes N``) when one core
cannot send enough: each process runs its share of the plan from the same start time and
sends its per-second intervals and its final result to the parent, which merges them
(histograms add up exactly; nothing is averaged).

>>> outcome = run(plan, processes=2, on_interval=print)   # doctest: +SKIP
>>> outcome.total.latency.percentile(99)                  # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from shipyard.loadtest.errors import LoadtestError
from shipyard.loadtest.models import Plan, run_plan
from shipyard.loadtest.results import Interval, ProcessResult

#: how long worker processes may take to start (import, connect the queue)
START_SECONDS = 60.0
#: the lead between "all ready" and the common start time
LEAD_SECONDS = 0.2


@dataclass
class Outcome:
    """A whole run, merged over its processes."""

    plan: Plan  # the whole plan (all processes together)
    processes: int
    intervals: list[Interval]  # every second, ramp included (negative seconds), in order
    total: Interval  # the measured seconds together
    results: list[ProcessResult]

    @property
    def measured_seconds(self) -> float:
        return max((r.measured_seconds for r in self.results), default=0.0)

    @property
    def stopped_by(self) -> str:
        """ "interrupted" (Ctrl-C), "max-requests" or "duration"."""
        reasons = {r.stopped_by for r in self.results}
        for reason in ("interrupted", "max-requests"):
            if reason in reasons:
                return reason
        return "duration"

    @property
    def rps(self) -> float:
        """Answers per second over the measured time."""
        seconds = self.measured_seconds
        return self.total.responses / seconds if seconds > 0 else 0.0

    @property
    def measured(self) -> list[Interval]:
        return [i for i in self.intervals if i.second >= 0]


def split(plan: Plan, processes: int) -> list[Plan]:
    """``plan`` cut into ``processes`` shares (rate, concurrency, request cap, connection
    cap), with the open model's schedules interleaved."""
    if processes == 1:
        return [plan]
    shares = []
    for p in range(processes):
        shares.append(
            replace(
                plan,
                rate=plan.rate / processes if plan.rate is not None else None,
                concurrency=_share(plan.concurrency, processes, p) if plan.concurrency else None,
                max_requests=max(1, _share(plan.max_requests, processes, p)),
                max_connections=max(1, -(-plan.max_connections // processes)),
                phase=p / plan.rate if plan.rate else 0.0,
                first_request=p * len(plan.requests) // processes,
            )
        )
    return shares


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def run(
    plan: Plan,
    *,
    processes: int = 1,
    on_interval: Callable[[Interval], None] | None = None,
) -> Outcome:
    """Run ``plan`` in this process or over ``processes`` processes; ``on_interval`` is
    called with each second as it closes (merged over the processes)."""
    if plan.concurrency is not None and plan.concurrency < processes:
        raise LoadtestError(
            f"--concurrency {plan.concurrency} is less than --processes {processes}: each "
            "process needs at least one connection"
        )
    intervals: dict[int, Interval] = {}

    def collect(interval: Interval) -> None:
        intervals[interval.second] = interval
        if on_interval is not None:
            on_interval(interval)

    if processes == 1:
        result = run_plan(plan, collect)
        return _outcome(plan, 1, intervals, [result])
    return _run_processes(plan, processes, on_interval)


def _outcome(
    plan: Plan, processes: int, intervals: dict[int, Interval], results: list[ProcessResult]
) -> Outcome:
    total = Interval(second=0)
    for result in results:
        total.merge(result.total)
    ordered = [intervals[s] for s in sorted(intervals)]
    return Outcome(plan, processes, ordered, total, results)


def _run_processes(
    plan: Plan, processes: int, on_interval: Callable[[Interval], None] | None
) -> Outcome:
    context = multiprocessing.get_context("spawn")
    messages: Any = context.Queue()
    go: Any = context.Event()
    start_at: Any = context.Value("d", 0.0)
    shares = split(plan, processes)
    children = [
        context.Process(
            target=_child,
            args=(i, share, messages, go, start_at),
            name=f"shipyard-loadtest-{i}",
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    for child in children:
        child.start()
    # Ctrl-C (or a SIGINT to this process alone) is passed to the children: each stops
    # sending and reports what it measured, which this process still collects

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGINT)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, forward) if main_thread else None
    try:
        ready = 0
        deadline = time.monotonic() + START_SECONDS
        while ready < processes:
            kind, index, payload = _get(messages, deadline, children)
            if kind == "error":
                raise LoadtestError(f"load process {index} failed: {payload}")
            ready += kind == "ready"
        start_at.value = time.perf_counter() + LEAD_SECONDS
        go.set()
        merged: dict[int, Interval] = {}
        reported: dict[int, int] = {}
        results: dict[int, ProcessResult] = {}
        # a generous bound: the run, the drain, and the start-up again
        deadline = time.monotonic() + plan.ramp + plan.duration + plan.timeout + START_SECONDS
        while len(results) < processes:
            kind, index, payload = _get(messages, deadline, children)
            if kind == "error":
                raise LoadtestError(f"load process {index} failed: {payload}")
            if kind == "result":
                results[index] = payload
            elif kind == "interval":
                second = payload.second
                if second in merged:
                    merged[second].merge(payload)
                else:
                    merged[second] = payload
                reported[second] = reported.get(second, 0) + 1
                if reported[second] == processes and on_interval is not None:
                    on_interval(merged[second])
        for child in children:
            child.join(5)
        return _outcome(plan, processes, merged, [results[i] for i in range(processes)])
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        for child in children:
            if child.is_alive():
                child.terminate()
                child.join(5)


def _get(messages: Any, deadline: float, children: list[Any]) -> tuple[str, int, Any]:
    while True:
        try:
            return messages.get(timeout=0.5)  # type: ignore[no-any-return]
        except queue_module.Empty:
            dead = [c for c in children if c.exitcode not in (None, 0)]
            if dead:
                raise LoadtestError(
                    f"load process {dead[0].name} exited with status {dead[0].exitcode}"
                ) from None
            if time.monotonic() > deadline:
                raise LoadtestError("the load processes did not report in time") from None


def _child(index: int, plan: Plan, messages: Any, go: Any, start_at: Any) -> None:
    """A worker process: wait for the common start, run, report."""
    try:
        messages.put(("ready", index, None))
        if not go.wait(START_SECONDS):
            return
        share = replace(plan, start_at=start_at.value)
        result = run_plan(share, lambda interval: messages.put(("interval", index, interval)))
        messages.put(("result", index, result))
    except Exception as exc:  # reported to the parent, which names it
        messages.put(("error", index, f"{type(exc).__name__}: {exc}"))


__all__ = ["Outcome", "run", "split"]
