"""A resumed run says which tasks it reused (terminal, ``shipyard show``, the UI), and their
time, spent in the origin run, counts for nothing in its step durations and timeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from shipyard.cli.main import main
from shipyard.keys import Guard, KeyStore
from shipyard.store.context import default_stores
from shipyard.store.records import RunStatus
from shipyard.testing import run_flow, write_flow
from shipyard.ui import standalone, timeline

FLOW = """
import os, time
from shipyard import FlowSpec, Parameter, step

class ReuseFlow(FlowSpec):
    marker = Parameter("marker", default="")

    @step
    def start(self):
        self.items = [1, 2, 3]
        time.sleep(0.3)
        self.next(self.work, foreach="items")

    @step
    def work(self):
        time.sleep(0.3)
        self.sq = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        if os.path.exists(self.marker):
            raise RuntimeError("broken until the marker goes")
"""


def test_a_resume_marks_reused_tasks_and_leaves_their_time_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "broken"
    marker.write_text("x")
    path = write_flow(FLOW, tmp_path)
    first = run_flow(path, marker=str(marker))
    assert first.record.status is RunStatus.FAILED
    marker.unlink()
    capsys.readouterr()
    second = run_flow(path, origin=first)
    out = capsys.readouterr().out
    assert second.successful
    assert f"reused 5 tasks of {first.pathspec}: start, work ×3, join; ran 1" in out
    assert f"start/{second['start'].task.id} reused from the origin run" in out

    summaries = {s.name: s for s in second.step_summaries()}
    assert summaries["work"].reused == 3 and summaries["work"].started_at is None
    assert summaries["end"].reused == 0 and summaries["end"].started_at is not None
    # the end step's time is this run's: well under what start and work took in the origin
    took = (summaries["end"].finished_at - summaries["end"].started_at).total_seconds()
    assert took < 0.3

    show = CliRunner().invoke(main, ["show", second.pathspec]).output
    start_row = next(line for line in show.splitlines() if line.startswith("start"))
    assert "reused" in start_row
    step = CliRunner().invoke(main, ["show", f"{second.pathspec}/work"]).output
    assert sum(line.rstrip().endswith("reused") for line in step.splitlines()) == 3

    # the UI: the SQL summaries, the timeline and the run page
    meta = default_stores().meta
    rows = {s["step_name"]: s for s in meta.step_summaries(second.id)}
    assert rows["work"]["reused"] == 3 and rows["work"]["started_at"] is None
    tasks = meta.list_tasks(second.id)
    record = second.record
    bars = timeline.build(record.created_at, tasks, list(rows.values()), "{step}/{task}", "{step}")
    reused = [b for b in bars.bars if b.status == timeline.REUSED]
    assert len(reused) == 5 and all(b.width == 0 for b in reused)
    per_step = timeline.build(record.created_at, None, list(rows.values()), "", "{step}")
    assert [b.status for b in per_step.bars].count(timeline.REUSED) == 3  # start, work, join
    # the axis spans this run's own work: the end task's bar reaches its end
    end_bar = next(b for b in bars.bars if b.status != timeline.REUSED)
    full = timeline.WIDTH - timeline.LABEL_W - 10
    assert end_bar.label == "end" and end_bar.x + end_bar.width == pytest.approx(full, abs=2.5)
    app = standalone(meta, default_stores().blobs, Guard(KeyStore(meta)))
    client = TestClient(app, client=("127.0.0.1", 1234), base_url="http://127.0.0.1:8002")
    page = client.get(f"/ui/runs/ReuseFlow/{second.id}")
    assert page.status_code == 200
    assert page.text.count("↻ reused") >= 5 + 3  # timeline marks and the step summary
    steps = client.get(f"/ui/api/runs/ReuseFlow/{second.id}").json()["steps"]
    assert {s["step_name"]: s["reused"] for s in steps} == {
        "start": 1, "work": 3, "join": 1, "end": 0,
    }  # fmt: skip
