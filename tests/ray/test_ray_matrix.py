"""The local runtime's DAG-shape matrix (tests/support/flow_shapes.py) on the session's
two-node cluster: every shape, run once locally and once with ``--executor ray``, gives the
same artifacts and the same attempts — with ``@retry`` and ``@catch`` in every work task (one
run per shape and executor keeps it affordable). One more flow covers the rest that must
behave as locally: a foreach pinned to each node (``@ray_options``), joins,
``merge_artifacts``, ``@timeout`` then a retry, ``@card`` and ``current.register_model`` —
and where each task ran, through ``task.node`` and ``shipyard show``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shipyard.client import Run
from shipyard.store.records import TaskStatus
from shipyard.testing import run_flow, write_flow
from support.flow_shapes import SHAPES, expected, results, source
from support.ray_cluster import RayCluster

#: every work task fails its first attempt (retried); item 0 fails the retry too (caught)
DECORATORS = "@catch(var='failure')\n    @retry(times=1, minutes_between_retries=0)"
BODY = (
    "if current.retry_count < 1:\n"
    "            raise ValueError('flaky')\n"
    "        if self.item == 0:\n"
    "            raise KeyError('boom')"
)


def _value(value: Any) -> Any:
    """An artifact's value, comparable across runs (a caught failure by type and message)."""
    if hasattr(value, "type") and hasattr(value, "message"):
        return ("failure", value.type, value.message)
    return value


def snapshot(run: Run) -> dict[tuple[str, tuple[int, ...]], Any]:
    """(step, foreach indices) -> (attempt statuses, artifacts) for every task."""
    found = {}
    for task in run.tasks():
        where = tuple(int(frame["index"]) for frame in task.foreach_stack)
        statuses = [a.status.value for a in task.attempts]
        found[(task.step_name, where)] = (
            statuses,
            {a.name: _value(a.data) for a in task if a.name != "name"},
        )
    return found


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_with_retry_and_catch_gives_the_same_run_on_ray(
    shape: str, tmp_path: Path, ray_cluster: RayCluster
) -> None:
    flow = source(shape, BODY, DECORATORS).replace(
        "self.results = [self.out]", "self.results = [] if self.failure else [self.out]"
    )
    path = write_flow(flow, tmp_path)
    here = run_flow(path, alpha=3)
    there = run_flow(path, alpha=3, executor="ray", ray_address=ray_cluster.address)
    assert here.successful and there.successful, [t.exception for t in there.tasks()]
    wanted = [r for r in expected(shape, alpha=3) if r != 130]  # item 0 was caught
    assert results(there) == results(here) == wanted
    assert snapshot(there) == snapshot(here)
    for task in there["work"]:
        statuses = [a.status for a in task.attempts]
        assert statuses[0] is TaskStatus.FAILED and statuses[-1] is TaskStatus.SUCCEEDED
        assert task.node is not None and task.node.id in ray_cluster.node_ids.values()
        failed = task.attempts[0]
        assert failed.error["type"] == "ValueError" and failed.node is not None


EVERYTHING = """
import time
from shipyard import FlowSpec, card, current, ray_options, retry, step, timeout
from shipyard.cards import Markdown


class EverythingFlow(FlowSpec):
    @step
    def start(self):
        self.shared = "both sides"
        self.items = [1, 2, 3]
        self.next(self.fan_a, self.fan_b)

    @step
    def fan_a(self):
        self.next(self.on_a, foreach="items")

    @ray_options(resources={"node_a": 0.01})
    @step
    def on_a(self):
        self.value = self.input * 10
        self.next(self.join_a)

    @step
    def join_a(self, inputs):
        self.from_a = sorted(i.value for i in inputs)
        self.merge_artifacts(inputs, include=["shared"])
        self.next(self.both)

    @step
    def fan_b(self):
        self.next(self.on_b, foreach="items")

    @ray_options(resources={"node_b": 0.01})
    @step
    def on_b(self):
        self.value = self.input * 100
        self.next(self.join_b)

    @step
    def join_b(self, inputs):
        self.from_b = sorted(i.value for i in inputs)
        self.merge_artifacts(inputs, include=["shared"])
        self.next(self.both)

    @step
    def both(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.model)

    @card
    @retry(times=1, minutes_between_retries=0)
    @timeout(seconds=5)  # on Ray the clock includes starting a fresh worker (~1.5 s)
    @step
    def model(self):
        if current.retry_count == 0:
            time.sleep(60)  # the first attempt times out; the retry goes on
        self.weights = {"a": sum(self.from_a), "b": sum(self.from_b)}
        current.card.append(Markdown(f"# weights {self.weights['a']} / {self.weights['b']}"))
        current.register_model("everything", self.weights, metrics={"total": 6660})
        self.next(self.end)

    @step
    def end(self):
        print("shared", self.shared, self.weights)
"""


def test_pins_joins_merges_timeouts_cards_and_models_behave_as_locally(
    tmp_path: Path, ray_cluster: RayCluster
) -> None:
    from shipyard.cards import get_cards
    from shipyard.registry import Model

    path = write_flow(EVERYTHING, tmp_path)
    here = run_flow(path)
    there = run_flow(path, executor="ray", ray_address=ray_cluster.address)
    assert here.successful and there.successful, [t.exception for t in there.tasks()]
    assert snapshot(there) == snapshot(here)
    model = there["model"].task
    assert [a.status for a in model.attempts] == [TaskStatus.FAILED, TaskStatus.SUCCEEDED]
    assert model.attempts[0].error["type"] == "TimeoutError"
    assert there["end"].task.data.shared == "both sides"
    assert there["end"].task.data.from_a == [10, 20, 30]
    (report,) = get_cards(model)
    assert "weights 60 / 600" in report.html
    assert Model("everything:2").load() == {"a": 60, "b": 600}  # :1 is the local run's
    assert Model("everything:2").info.run_id == there.id

    # each foreach ran on the node it was pinned to: the run used both nodes
    node_a, node_b = ray_cluster.node_ids["node_a"], ray_cluster.node_ids["node_b"]
    assert {t.node.id for t in there["on_a"] if t.node} == {node_a}
    assert {t.node.id for t in there["on_b"] if t.node} == {node_b}
    used = there.nodes()
    assert {n.id for n in used} == {node_a, node_b}
    assert all(n.ip == "127.0.0.1" and n.host for n in used)
    assert here["on_a"].task.node is None
    show = CliRunner().invoke(_main(), ["show", f"{there.pathspec}/on_b"])
    assert show.exit_code == 0, show.output
    rows = [line for line in show.output.splitlines() if "/on_b/" in line]
    assert len(rows) == 3 and all(f"{node_b[:8]} (127.0.0.1, " in r for r in rows), show.output
    run_view = CliRunner().invoke(_main(), ["show", there.pathspec]).output
    assert f"{node_a[:8]} (127.0.0.1, " in run_view and f"{node_b[:8]} (127.0.0.1, " in run_view
    # the timed-out attempt's worker was killed before it could say where it ran
    assert model.attempts[0].node is None and model.attempts[1].node is not None
    task_view = CliRunner().invoke(_main(), ["show", model.pathspec]).output
    assert str(model.attempts[1].node) in task_view, task_view


def _main() -> Any:
    from shipyard.cli.main import main

    return main
