"""``resume --step S`` without a run id resumes the flow's latest run, succeeded or not (as
Metaflow's ``resume`` does), and says which; without ``--step`` it still takes the latest
failed run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shipyard.client import Flow, Run
from shipyard.store import context as _stores
from shipyard.testing import write_flow

FLOW = """
from shipyard import FlowSpec, step


class LatestFlow(FlowSpec):
    @step
    def start(self):
        self.value = 2
        self.next(self.end)

    @step
    def end(self):
        print("value", self.value)


if __name__ == "__main__":
    LatestFlow()
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


def latest() -> Run:
    _stores.reset()
    return Flow("LatestFlow").latest_run


def test_resume_step_takes_the_latest_run_when_it_succeeded(tmp_path: Path) -> None:
    path = write_flow(FLOW, tmp_path)
    assert run(str(path), "run").returncode == 0
    first = latest()
    assert first.successful

    refused = run(str(path), "resume")  # no --step: only a failed run is resumed by default
    assert refused.returncode == 1 and "no failed, killed or dead run" in refused.stderr

    again = run(str(path), "resume", "--step", "end")
    assert again.returncode == 0, again.stdout + again.stderr
    said = f"resuming LatestFlow/{first.id} (succeeded; the latest run of LatestFlow)"
    assert f"{said} from step end" in again.stderr
    second = latest()
    assert second.origin_run == first and second.successful
    assert second["start"].task.origin_pathspec is not None  # reused
    assert second["end"].task.origin_pathspec is None  # re-run
    assert all(a.pid for a in second["end"].task.attempts)  # written by MetaStore itself

    by_name = run("-m", "shipyard", "resume", "LatestFlow", "--step", "end")
    assert by_name.returncode == 0, by_name.stdout + by_name.stderr
    assert f"resuming LatestFlow/{second.id} (succeeded" in by_name.stderr
    assert latest().origin_run == second

    no_step = run(str(path), "resume", "--step", "nope")
    assert no_step.returncode != 0
    assert "has no finished run with a step 'nope'" in no_step.stderr
    _stores.reset()
