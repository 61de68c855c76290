"""The DAG layout and the timeline across graph shapes: linear, branch, foreach, nested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shipyard.ui import dag, timeline


def _graph(edges: dict[str, list[str]], types: dict[str, str] | None = None) -> dict[str, Any]:
    types = types or {}
    steps = {
        name: {"type": types.get(name, "linear" if nxt else "end"), "next": nxt}
        for name, nxt in edges.items()
    }
    return {"order": list(edges), "steps": steps}


SHAPES = {
    "linear": _graph({"start": ["a"], "a": ["end"], "end": []}),
    "branch": _graph(
        {"start": ["a", "b"], "a": ["join"], "b": ["join"], "join": ["end"], "end": []},
        {"start": "split", "join": "join"},
    ),
    "foreach": _graph(
        {"start": ["body"], "body": ["join"], "join": ["end"], "end": []},
        {"start": "foreach", "join": "join"},
    ),
    "nested": _graph(
        {
            "start": ["outer"],
            "outer": ["inner"],
            "inner": ["ijoin"],
            "ijoin": ["ojoin"],
            "ojoin": ["end"],
            "end": [],
        },
        {"start": "foreach", "outer": "foreach", "ijoin": "join", "ojoin": "join"},
    ),
    "uneven": _graph(  # a branch with one long arm: the join sits below the longest
        {
            "start": ["a", "b"],
            "a": ["a2"],
            "a2": ["join"],
            "b": ["join"],
            "join": ["end"],
            "end": [],
        },
        {"start": "split", "join": "join"},
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_step_is_placed_once_and_every_edge_points_down(shape: str) -> None:
    graph = SHAPES[shape]
    layout = dag.layout(graph, [])
    nodes = {n.name: n for n in layout.nodes}
    assert sorted(nodes) == sorted(graph["steps"])
    expected = sorted((a, b) for a, s in graph["steps"].items() for b in s["next"])
    assert sorted((e.source, e.target) for e in layout.edges) == expected
    for edge in layout.edges:
        assert nodes[edge.target].y > nodes[edge.source].y
    boxes = {(n.x, n.y) for n in nodes.values()}
    assert len(boxes) == len(nodes)  # no two boxes overlap
    for node in nodes.values():
        assert 0 <= node.x and node.x + layout.node_w <= layout.width
        assert node.y + layout.node_h <= layout.height
        assert node.status == "not-started"


def test_a_join_sits_below_its_longest_branch() -> None:
    nodes = {n.name: n for n in dag.layout(SHAPES["uneven"], []).nodes}
    assert nodes["join"].y > nodes["a2"].y > nodes["a"].y
    assert nodes["a"].y == nodes["b"].y


def _summary(step: str, **counts: int) -> dict[str, Any]:
    return {
        "step_name": step,
        "tasks": sum(counts.values()),
        "counts": counts,
        "started_at": None,
        "finished_at": None,
    }


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ({"succeeded": 3}, "succeeded"),
        ({"succeeded": 2, "failed": 1}, "failed"),
        ({"succeeded": 2, "running": 1}, "running"),
        ({"succeeded": 2, "pending": 1}, "running"),
        ({"pending": 3}, "pending"),
        ({"killed": 1, "succeeded": 1}, "killed"),
        ({}, "not-started"),
    ],
)
def test_step_status_from_counts(counts: dict[str, int], status: str) -> None:
    assert dag.step_status(_summary("s", **counts)) == status


def test_foreach_counts_show_in_the_box() -> None:
    layout = dag.layout(SHAPES["foreach"], [_summary("body", succeeded=7, failed=1, running=2)])
    body = next(n for n in layout.nodes if n.name == "body")
    assert body.status == "failed" and body.detail == "7 / 10 tasks done · 1 failed · 2 running"


def test_the_timeline_scales_bars_to_the_run() -> None:
    from shipyard.store.records import TaskRecord, TaskStatus

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def task(i: int, start: int, end: int | None) -> TaskRecord:
        return TaskRecord(
            "F",
            1,
            "s",
            i,
            TaskStatus.SUCCEEDED if end else TaskStatus.PENDING,
            t0,
            t0 + timedelta(seconds=start) if end else None,
            t0 + timedelta(seconds=end) if end else None,
            1,
            (),
            (),
            None,
        )

    built = timeline.build(t0, [task(1, 0, 10), task(2, 5, 10), task(3, 0, None)], [], "{task}", "")
    first, second, idle = built.bars
    assert first.x == 0 and second.x == pytest.approx(first.width / 2)
    assert first.width == pytest.approx(timeline.WIDTH - timeline.LABEL_W - 10)
    assert idle.width == 0 and "not started" in idle.title
    assert [b.href for b in built.bars] == ["1", "2", "3"] and not built.per_step
