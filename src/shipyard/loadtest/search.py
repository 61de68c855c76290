"""``--find-max --slo ...``: the highest open-model rate that meets the objectives, found in
a bounded number of steps of a set duration.

The rate doubles from the start until a step misses (or, meeting them, the client itself
was the limit: a higher rate would measure the client), then the gap between the last rate
met and the first missed is halved for the steps left, until it is within 5 % or the steps
run out. Every
step is a whole run (its ramp, its duration), so the search takes at most ``steps`` times
as long as one run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from shipyard.loadtest.models import Plan
from shipyard.loadtest.processes import Outcome, run
from shipyard.loadtest.report import client_bound, judge
from shipyard.loadtest.slo import Check, Objective

#: the search stops when the rates met and missed are this close (relative)
CLOSE_ENOUGH = 0.05


@dataclass
class Step:
    """One rate tried."""

    rate: float
    outcome: Outcome
    checks: list[Check]
    client_limited: bool

    @property
    def met(self) -> bool:
        return all(c.met for c in self.checks)


@dataclass
class Search:
    steps: list[Step] = field(default_factory=list)
    #: why the search ended: "converged", "steps", or "client" (the client was the limit)
    ended_by: str = "steps"

    @property
    def best(self) -> Step | None:
        """The highest rate that met the objectives, if any did."""
        met = [s for s in self.steps if s.met]
        return max(met, key=lambda s: s.rate) if met else None


def find_max(
    plan: Plan,
    objectives: list[Objective],
    *,
    steps: int,
    processes: int = 1,
    on_step: Callable[[Step], None] | None = None,
    run_step: Callable[[Plan, int], Outcome] | None = None,
) -> Search:
    """Search from ``plan.rate`` (see the module docstring); ``run_step`` (for tests) runs
    one step, by default :func:`~shipyard.loadtest.processes.run`."""
    if plan.rate is None:
        raise ValueError("find_max searches the open model: the plan needs a rate")
    execute = run_step or (lambda p, n: run(p, processes=n))
    search = Search()
    good: float | None = None
    bad: float | None = None
    rate = plan.rate
    for _ in range(steps):
        step_plan = replace(plan, rate=rate, max_requests=max(plan.max_requests, 1))
        outcome = execute(step_plan, processes)
        step = Step(rate, outcome, judge(outcome, objectives), client_bound(outcome))
        search.steps.append(step)
        if on_step is not None:
            on_step(step)
        if step.met and step.client_limited:  # higher rates would measure the client
            search.ended_by = "client"
            return search
        if step.met:
            good = rate
        else:
            bad = rate
        if bad is None:
            rate = rate * 2
        elif good is None:
            rate = rate / 2
        else:
            if (bad - good) / good <= CLOSE_ENOUGH:
                search.ended_by = "converged"
                return search
            rate = (good + bad) / 2
    return search


__all__ = ["CLOSE_ENOUGH", "Search", "Step", "find_max"]
