"""Where each attempt ran (``--executor ray``), read back from a recorded run: ``task.node``
and ``attempt.node`` in the client, the node column of ``shipyard show`` (failed attempts
too), and the run page's timeline grouped by node. The run is recorded through the metadata
store with the fields the runtime writes (a Ray run itself is in tests/ray/test_ray_matrix.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from shipyard.cli.main import main
from shipyard.client import Node, Run
from shipyard.config import current_user
from shipyard.flow.loader import load_flow
from shipyard.keys import Guard, KeyStore
from shipyard.store.context import default_stores
from shipyard.store.records import RunStatus, TaskStatus
from shipyard.testing import write_flow
from shipyard.ui import standalone, timeline

FLOW = """
from shipyard import FlowSpec, step

class NodesFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""

A = {"node": "a1" * 28, "node_ip": "10.0.0.7", "node_host": "worker-a"}
B = {"node": "b2" * 28, "node_ip": "10.0.0.8", "node_host": "worker-b"}
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """A Ray run as the runtime records it: start on A; work[0] and work[2] on A, work[1]
    failed once on B (its error carries the node) then succeeded on B; join and end on A."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    loaded = load_flow(write_flow(FLOW, tmp_path), "NodesFlow")
    meta = default_stores().meta
    graph = loaded.graph().to_json(loaded.module_name)
    run_id = meta.create_run(
        "NodesFlow", user=current_user(), params={}, tags=[], graph=graph, code_key=None, at=_at(0)
    )

    def task(step: str, stack: list[dict[str, int | str]], node: dict[str, str], t: float) -> int:
        (task_id,) = meta.create_tasks(run_id, [(step, stack, [], None)], at=_at(t))
        meta.start_attempt(task_id, 0, pid=None, at=_at(t))
        result = {"foreach": None, "duration": 1.0, **node}
        meta.finish_attempt(task_id, 0, status=TaskStatus.SUCCEEDED, result=result, at=_at(t + 1))
        return task_id

    task("start", [], A, 0)
    for i, node in ((0, A), (2, A)):
        task("work", [{"step": "start", "index": i, "num_splits": 3}], node, 2)
    stack = [{"step": "start", "index": 1, "num_splits": 3}]
    (flaky,) = meta.create_tasks(run_id, [("work", stack, [], None)], at=_at(2))
    meta.start_attempt(flaky, 0, pid=None, at=_at(2))
    error = {"type": "ValueError", "message": "flaky", "traceback": "", **B}
    meta.finish_attempt(flaky, 0, status=TaskStatus.FAILED, error=error, final=False, at=_at(3))
    meta.start_attempt(flaky, 1, pid=None, at=_at(3))
    meta.finish_attempt(
        flaky, 1, status=TaskStatus.SUCCEEDED, result={"duration": 1.0, **B}, at=_at(4)
    )
    task("join", [], A, 5)
    task("end", [], A, 6)
    meta.finish_run(run_id, RunStatus.SUCCEEDED, at=_at(8))
    return Run(f"NodesFlow/{run_id}")


def test_each_attempt_knows_its_node_in_the_client(recorded: Run) -> None:
    node_a, node_b = (
        Node(A["node"], "10.0.0.7", "worker-a"),
        Node(B["node"], "10.0.0.8", "worker-b"),
    )
    assert recorded["start"].task.node == node_a
    flaky = next(t for t in recorded["work"] if t.index == 1)
    assert flaky.node == node_b
    assert [a.node for a in flaky.attempts] == [node_b, node_b]
    assert [a.status for a in flaky.attempts] == [TaskStatus.FAILED, TaskStatus.SUCCEEDED]
    assert str(node_a) == "a1a1a1a1 (10.0.0.7, worker-a)"
    assert recorded.nodes() == {node_a: 5, node_b: 1}


def test_shipyard_show_has_a_node_column_for_ray_runs(recorded: Run) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["show", recorded.pathspec])
    assert out.exit_code == 0, out.output
    assert "a1a1a1a1 (10.0.0.7, worker-a)  5" in out.output
    assert "b2b2b2b2 (10.0.0.8, worker-b)  1" in out.output
    step = runner.invoke(main, ["show", f"{recorded.pathspec}/work"])
    assert step.exit_code == 0, step.output
    assert re.search(r"node\s*$", step.output.splitlines()[1])  # the header's last column
    rows = [line for line in step.output.splitlines() if "/work/" in line]
    assert len(rows) == 3
    assert sum("b2b2b2b2 (10.0.0.8, worker-b)" in r for r in rows) == 1
    assert sum("a1a1a1a1 (10.0.0.7, worker-a)" in r for r in rows) == 2
    flaky = next(t for t in recorded["work"] if t.index == 1)
    shown = runner.invoke(main, ["show", flaky.pathspec])
    assert shown.exit_code == 0, shown.output
    attempts = [line for line in shown.output.splitlines() if "b2b2b2b2" in line]
    assert len(attempts) == 2  # the failed attempt says where it failed
    assert "ValueError: flaky" in attempts[0]


def test_a_local_run_shows_no_node_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.testing import run_flow

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    run = run_flow(FLOW)
    assert run.successful and run["start"].task.node is None and run.nodes() == {}
    out = CliRunner().invoke(main, ["show", f"{run.pathspec}/work"]).output
    assert "node" not in out.splitlines()[1]


def test_the_run_page_timeline_is_grouped_by_node(recorded: Run) -> None:
    stores = default_stores()
    tasks = stores.meta.list_tasks(recorded.id)
    nodes = {t.task_id: Node.from_fields(t.result) for t in tasks}
    bars = timeline.build(
        recorded.record.created_at, tasks, [], "{step}/{task}", "{step}",
        nodes={k: v for k, v in nodes.items() if v is not None},
    )  # fmt: skip
    assert [g.label for g in bars.groups] == [
        "node a1a1a1a1 (10.0.0.7, worker-a) · 5 tasks",
        "node b2b2b2b2 (10.0.0.8, worker-b) · 1 task",
    ]
    # node A's header, its five bars, then node B's header and its one bar
    header_a, header_b = (g.y for g in bars.groups)
    ys = sorted(b.y for b in bars.bars)
    assert header_a < ys[0] and ys[4] < header_b < ys[5]
    assert [b.label for b in bars.bars][-1] == "work[1]"
    assert "on node b2b2b2b2 (10.0.0.8, worker-b): succeeded" in bars.bars[-1].title
    # one node: no groups
    single = timeline.build(
        recorded.record.created_at, tasks, [], "{step}/{task}", "{step}",
        nodes={t.task_id: Node(A["node"]) for t in tasks},
    )  # fmt: skip
    assert single.groups == []

    app = standalone(stores.meta, stores.blobs, Guard(KeyStore(stores.meta)))
    client = TestClient(app, client=("127.0.0.1", 1234), base_url="http://127.0.0.1:8002")
    page = client.get(f"/ui/runs/{recorded.pathspec}")
    assert page.status_code == 200
    labels = re.findall(r'<text class="node-label"[^>]*>([^<]+)</text>', page.text)
    assert labels == [
        "node a1a1a1a1 (10.0.0.7, worker-a) · 5 tasks",
        "node b2b2b2b2 (10.0.0.8, worker-b) · 1 task",
    ]
