"""The DAG shapes the engine is tested across. Each has a step named ``work`` (where a
behaviour is injected as ``{decorators}`` and ``{body}``) and an ``end`` that collects
``self.results``: the sorted ``out`` of every work task. ``WORK_TASKS`` is how many run."""

from __future__ import annotations

HEADER = """
import os, signal, sys, time
from shipyard import FlowSpec, Parameter, current, step, retry, catch, timeout

def collect(inputs):
    out = []
    for i in inputs:
        out.extend(getattr(i, "results", []))
    return sorted(out)
"""

LINEAR = (
    HEADER
    + """
class LinearFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.base = 100
        self.next(self.work)

    {decorators}
    @step
    def work(self):
        self.item = 0
        {body}
        self.out = self.base + self.alpha * 10 + self.item
        self.next(self.end)

    @step
    def end(self):
        self.results = [self.out]
"""
)

BRANCH = (
    HEADER
    + """
class BranchFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.base = 100
        self.next(self.work, self.other)

    {decorators}
    @step
    def work(self):
        self.item = 0
        {body}
        self.results = [self.base + self.alpha * 10 + self.item]
        self.next(self.join)

    @step
    def other(self):
        self.results = []
        self.next(self.join)

    @step
    def join(self, inputs):
        assert inputs.other.results == []
        self.results = collect(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
)

FOREACH = (
    HEADER
    + """
class ForeachFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.base = 100
        self.items = [0, 1, 2, 3]
        self.next(self.work, foreach="items")

    {decorators}
    @step
    def work(self):
        self.item = self.input
        {body}
        self.results = [self.base + self.alpha * 10 + self.item]
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = collect(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
)

NESTED = (
    HEADER
    + """
class NestedFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.base = 100
        self.outer = [0, 1]
        self.next(self.mid, foreach="outer")

    @step
    def mid(self):
        self.o = self.input
        self.inner = [0, 1]
        self.next(self.work, foreach="inner")

    {decorators}
    @step
    def work(self):
        self.item = self.o * 2 + self.input
        {body}
        self.results = [self.base + self.alpha * 10 + self.item]
        self.next(self.join_inner)

    @step
    def join_inner(self, inputs):
        self.results = collect(inputs)
        self.next(self.join_outer)

    @step
    def join_outer(self, inputs):
        self.results = collect(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
)

BRANCH_IN_FOREACH = (
    HEADER
    + """
class BranchInForeachFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.base = 100
        self.items = [0, 1, 2]
        self.next(self.fan, foreach="items")

    @step
    def fan(self):
        self.i = self.input
        self.next(self.work, self.other)

    {decorators}
    @step
    def work(self):
        self.item = self.i
        {body}
        self.results = [self.base + self.alpha * 10 + self.item]
        self.next(self.join_branch)

    @step
    def other(self):
        self.results = []
        self.next(self.join_branch)

    @step
    def join_branch(self, inputs):
        self.results = collect(inputs)
        self.next(self.join_each)

    @step
    def join_each(self, inputs):
        self.results = collect(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
)

#: name -> (source template, number of work tasks, the work items)
SHAPES = {
    "linear": (LINEAR, [0]),
    "branch": (BRANCH, [0]),
    "foreach": (FOREACH, [0, 1, 2, 3]),
    "nested_foreach": (NESTED, [0, 1, 2, 3]),
    "branch_in_foreach": (BRANCH_IN_FOREACH, [0, 1, 2]),
}


def source(shape: str, body: str = "pass", decorators: str = "") -> str:
    template, _ = SHAPES[shape]
    return template.format(body=body, decorators=decorators)


def expected(shape: str, alpha: int = 1) -> list[int]:
    return sorted(100 + alpha * 10 + item for item in SHAPES[shape][1])


def results(run: object) -> list[int]:
    end = run["end"].task  # type: ignore[index]
    return list(end.data.results)
