"""(b) start -> foreach over N trivial tasks -> join -> end (N = $BENCH_FOREACH_N, default 100).

With ``BENCH_FAIL_JOIN=1`` in the environment the join raises, so that (b') can time a
``resume`` that re-runs only the join and the end and reuses the N finished tasks.
Written for Metaflow; bench/flows.py switches the import line to run it under shipyard.
"""

import os

from metaflow import FlowSpec, step


class ForeachFlow(FlowSpec):
    """Fan out over N items, square each one, add the squares up in the join."""

    @step
    def start(self):
        self.items = list(range(int(os.environ.get("BENCH_FOREACH_N", "100"))))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        self.value = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        if os.environ.get("BENCH_FAIL_JOIN") == "1":
            raise RuntimeError("join fails on purpose (BENCH_FAIL_JOIN=1); resume re-runs it")
        values = sorted(inp.value for inp in inputs)
        n = len(values)
        if values != [i * i for i in range(n)]:
            raise RuntimeError(f"join got wrong inputs: {values[:5]}... ({n} values)")
        self.total = sum(values)
        self.n = n
        self.next(self.end)

    @step
    def end(self):
        expected = int(os.environ.get("BENCH_FOREACH_N", "100"))
        if self.n != expected:
            raise RuntimeError(f"join saw {self.n} inputs, expected {expected}")


if __name__ == "__main__":
    ForeachFlow()
