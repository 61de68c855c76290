"""On a terminal, a foreach's progress bar reaches its last task before the steps after it
print: run a flow under a pseudo-terminal and read what it drew."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from shipyard.testing import write_flow

FLOW = """
from shipyard import FlowSpec, step


class BarFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.x = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        print("joined", sum(i.x for i in inputs))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BarFlow()
"""

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_a_terminal(path: Path) -> str:
    """What ``python path run`` writes to a terminal, escapes removed."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, str(path), "run"], stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(leader, 1 << 16)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        assert proc.wait(60) == 0, b"".join(chunks).decode(errors="replace")
    return _ESCAPES.sub("", b"".join(chunks).decode(errors="replace"))


def test_the_bar_shows_every_task_done_before_the_join_prints(tmp_path: Path) -> None:
    out = run_on_a_terminal(write_flow(FLOW, tmp_path))
    joined = out.index("joined 6")
    assert "BarFlow/1 succeeded" in out
    assert "4/4" in out[:joined], out  # drawn complete before the next step's output
