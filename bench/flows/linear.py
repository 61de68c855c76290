"""(a) A linear flow of 10 trivial steps: start -> s1 -> ... -> s8 -> end.

Written for Metaflow; bench/flows.py runs it unchanged under Metaflow and, with the import
line switched to ``from shipyard import ...``, under shipyard.
"""

from metaflow import FlowSpec, step


class LinearFlow(FlowSpec):
    """Ten trivial steps in a row; each adds one to a counter."""

    @step
    def start(self):
        self.count = 1
        self.next(self.s1)

    @step
    def s1(self):
        self.count += 1
        self.next(self.s2)

    @step
    def s2(self):
        self.count += 1
        self.next(self.s3)

    @step
    def s3(self):
        self.count += 1
        self.next(self.s4)

    @step
    def s4(self):
        self.count += 1
        self.next(self.s5)

    @step
    def s5(self):
        self.count += 1
        self.next(self.s6)

    @step
    def s6(self):
        self.count += 1
        self.next(self.s7)

    @step
    def s7(self):
        self.count += 1
        self.next(self.s8)

    @step
    def s8(self):
        self.count += 1
        self.next(self.end)

    @step
    def end(self):
        self.count += 1
        if self.count != 10:
            raise RuntimeError(f"expected 10 steps to have run, counted {self.count}")


if __name__ == "__main__":
    LinearFlow()
