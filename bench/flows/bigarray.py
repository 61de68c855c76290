"""(c) One step saves a large numpy array as an artifact, the next step loads it.

The array is ``np.random.default_rng(0).random($BENCH_ARRAY_N)`` (default 62_500_000
float64 = 500 MB). When ``BENCH_TIMES_FILE`` is set, the flow appends wall-clock stamps to
it: ``saved`` when the saving step's code has finished (the tool persists the artifact after
that), ``loaded`` when the next step has read every page of the array (a sum), and how long
a second, in-memory sum takes. ``loaded - saved - sum`` is the tool's hand-off time:
persist + schedule the next task + load.
Written for Metaflow; bench/flows.py switches the import line to run it under shipyard.
"""

import os
import time

import numpy as np
from metaflow import FlowSpec, step


def _stamp(label, value=None):
    path = os.environ.get("BENCH_TIMES_FILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{label} {time.time() if value is None else value:.6f}\n")


class BigArrayFlow(FlowSpec):
    """Save a 500 MB array in one step, load and check it in the next."""

    @step
    def start(self):
        n = int(os.environ.get("BENCH_ARRAY_N", "62500000"))
        self.array = np.random.default_rng(0).random(n)
        self.expected_sum = float(self.array.sum())
        _stamp("saved")
        self.next(self.load)

    @step
    def load(self):
        array = self.array
        total = float(array.sum())  # touches every page, even if the tool memory-maps
        _stamp("loaded")
        # The sum above is user work, not hand-off: time it again (now in memory) so the
        # driver can subtract it.
        t0 = time.perf_counter()
        float(array.sum())
        _stamp("sum_seconds", time.perf_counter() - t0)
        if abs(total - self.expected_sum) > 1e-6 * max(1.0, abs(total)):
            raise RuntimeError(f"loaded array sums to {total}, saved {self.expected_sum}")
        self.n = int(array.shape[0])
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigArrayFlow()
