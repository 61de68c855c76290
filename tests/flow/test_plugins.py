"""The decorator hook interface: a plugin's step decorator sees every phase without any
change to the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.testing import run_flow

FLOW = """
import json, os
from shipyard import FlowSpec, current, step, retry
from shipyard.flow.decorators import StepDecorator, TaskContext

LOG = os.environ["PLUGIN_LOG"]


class audit(StepDecorator):
    name = "audit"
    defaults = {"label": "x"}

    def _log(self, event, ctx):
        with open(LOG, "a") as fh:
            fh.write(json.dumps([event, ctx.spec.step_name, ctx.spec.attempt]) + "\\n")

    def step_init(self, graph, node):
        assert node.name == "start"

    def runtime_options(self, options):
        options.max_attempts = 2  # a plugin can change scheduling too

    def task_pre_step(self, ctx: TaskContext) -> None:
        self._log("pre", ctx)
        ctx.current_names["audit_label"] = self.attributes["label"]

    def task_post_step(self, ctx):
        ctx.flow.label = self.attributes["label"]
        self._log("post", ctx)

    def task_exception(self, ctx, exc):
        self._log("exception", ctx)
        return ctx.spec.attempt == 1  # the second attempt swallows the error

    def task_finished(self, ctx, ok):
        self._log("finished-ok" if ok else "finished-failed", ctx)


class PluginFlow(FlowSpec):
    @audit(label="seen")
    @step
    def start(self):
        with open(LOG, "a") as fh:  # a plugin's name on current
            fh.write(json.dumps(["step", current.audit_label, current.retry_count]) + "\\n")
        raise ValueError("always")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_plugin_decorator_sees_every_phase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("PLUGIN_LOG", str(log))
    run = run_flow(FLOW)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert events[:4] == [
        ["pre", "start", 0],
        ["step", "seen", 0],
        ["exception", "start", 0],
        ["finished-failed", "start", 0],
    ]
    # runtime_options gave the step a second attempt, whose exception the plugin swallowed:
    # post_step ran, then the step's missing self.next() failed the task anyway
    assert events[4:] == [
        ["pre", "start", 1],
        ["step", "seen", 1],
        ["exception", "start", 1],
        ["post", "start", 1],
        ["finished-failed", "start", 1],
    ]
    attempts = run["start"].task.attempts
    assert len(attempts) == 2
    assert "without calling self.next()" in attempts[1].error["message"]
