"""Lay out a run's DAG for an SVG drawn server-side (templates/_dag.svg.html).

Steps are placed in rows by their longest distance from ``start`` (so a join sits below
every branch it closes) and centred in their row; edges are cubic curves from the bottom of
a step to the top of the next. The status of a step comes from its task counts (one SQL
aggregate: :meth:`MetaStore.step_summaries`), so a 1,000-task foreach costs one row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipyard.ui.formats import shorten

NODE_W = 180
NODE_H = 56
GAP_X = 28
GAP_Y = 46
MARGIN = 16


@dataclass(frozen=True)
class DagNode:
    name: str
    label: str  # the name, shortened to fit the box
    kind: str  # linear, split, foreach, join, end
    status: str  # a task status, or "not-started"
    detail: str  # "3 / 1000 tasks done · 2 failed", or the status
    x: int
    y: int


@dataclass(frozen=True)
class DagEdge:
    source: str
    target: str
    path: str  # SVG path data


@dataclass(frozen=True)
class DagLayout:
    nodes: list[DagNode]
    edges: list[DagEdge]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def step_status(summary: Mapping[str, Any] | None) -> str:
    """One status for a step from its task counts: failed > running > killed > pending >
    succeeded; ``not-started`` while it has no task."""
    if not summary or not summary.get("tasks"):
        return "not-started"
    counts: Mapping[str, int] = summary.get("counts") or {}
    total = int(summary["tasks"])
    if counts.get("failed"):
        return "failed"
    if counts.get("running") or (counts.get("pending") and counts.get("succeeded")):
        return "running"
    if counts.get("killed"):
        return "killed"
    if counts.get("pending"):
        return "pending"
    return "succeeded" if counts.get("succeeded") == total else "running"


def _detail(summary: Mapping[str, Any] | None, status: str) -> str:
    if not summary or not summary.get("tasks"):
        return "not started"
    total = int(summary["tasks"])
    counts: Mapping[str, int] = summary.get("counts") or {}
    reused = int(summary.get("reused") or 0)
    if total == 1:
        return f"{status} · reused" if reused else status
    parts = [f"{counts.get('succeeded', 0)} / {total} tasks done"]
    for name in ("failed", "running", "killed"):
        if counts.get(name):
            parts.append(f"{counts[name]} {name}")
    if reused:
        parts.append(f"{reused} reused")
    return " · ".join(parts)


def _rows(graph: Mapping[str, Any]) -> list[list[str]]:
    steps: Mapping[str, Any] = graph.get("steps") or {}
    order = [str(n) for n in (graph.get("order") or steps)]
    order += [str(n) for n in steps if n not in order]
    depth: dict[str, int] = {}
    for name in order:  # topological: every parent comes first
        depth.setdefault(name, 0)
        for child in (steps.get(name) or {}).get("next") or ():
            child = str(child)
            if child in steps:
                depth[child] = max(depth.get(child, 0), depth[name] + 1)
    rows: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in order:
        rows[depth[name]].append(name)
    return rows


def layout(graph: Mapping[str, Any], summaries: list[dict[str, Any]]) -> DagLayout:
    """Positions of every step of ``graph`` (a run's ``graph`` JSON) and of its edges."""
    steps: Mapping[str, Any] = graph.get("steps") or {}
    by_step = {s["step_name"]: s for s in summaries}
    rows = _rows(graph)
    widest = max((len(r) for r in rows), default=1)
    width = 2 * MARGIN + widest * NODE_W + (widest - 1) * GAP_X
    nodes: dict[str, DagNode] = {}
    for row_index, row in enumerate(rows):
        row_width = len(row) * NODE_W + (len(row) - 1) * GAP_X
        left = (width - row_width) // 2
        for i, name in enumerate(row):
            summary = by_step.get(name)
            status = step_status(summary)
            nodes[name] = DagNode(
                name=name,
                label=shorten(name, 22),
                kind=str((steps.get(name) or {}).get("type") or "linear"),
                status=status,
                detail=_detail(summary, status),
                x=left + i * (NODE_W + GAP_X),
                y=MARGIN + row_index * (NODE_H + GAP_Y),
            )
    edges: list[DagEdge] = []
    for name, node in nodes.items():
        for child in (steps.get(name) or {}).get("next") or ():
            target = nodes.get(str(child))
            if target is None:
                continue
            x1, y1 = node.x + NODE_W // 2, node.y + NODE_H
            x2, y2 = target.x + NODE_W // 2, target.y - 4
            bend = max(12, (y2 - y1) // 2)
            path = f"M{x1},{y1} C{x1},{y1 + bend} {x2},{y2 - bend} {x2},{y2}"
            edges.append(DagEdge(name, target.name, path))
    height = 2 * MARGIN + len(rows) * NODE_H + max(0, len(rows) - 1) * GAP_Y
    return DagLayout(list(nodes.values()), edges, width, max(height, NODE_H + 2 * MARGIN))


__all__ = ["DagEdge", "DagLayout", "DagNode", "layout", "step_status"]
