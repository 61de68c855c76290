"""A Gantt-style timeline of a run's tasks, laid out for an SVG drawn server-side.

Up to :data:`MAX_TASK_ROWS` tasks get one bar each; a bigger run gets one bar per step
(earliest start to latest end, from the SQL aggregate) so the page stays small and fast.

A task a resume reused ran in the origin run, not in this one: it gets no bar on this run's
time axis but a ``reused`` marker at its start (hatched, zero seconds wide), and its time
counts for nothing (nor in a step's bar).

A run whose tasks ran on more than one Ray node (``--executor ray``) has its task bars
grouped by node, each group under a header naming the node (its short id, address and host
name) and how many tasks it ran there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipyard.store.records import Node, TaskRecord
from shipyard.ui.formats import duration, seconds_between, shorten, utc

MAX_TASK_ROWS = 200
#: the status of a bar for a task (or a whole step) a resume reused
REUSED = "reused"
WIDTH = 960
LABEL_W = 220
ROW_H = 18
AXIS_H = 22


@dataclass(frozen=True)
class Bar:
    label: str
    title: str  # the hover text
    status: str
    href: str | None
    x: float
    width: float
    y: int


@dataclass(frozen=True)
class Group:
    """A header row above the bars of the tasks one Ray node ran."""

    label: str
    y: int


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (x, label) along the axis
    width: int
    height: int
    per_step: bool  # bars are steps, not tasks
    groups: list[Group] = field(default_factory=list)  # by node: a multi-node Ray run
    label_w: int = LABEL_W
    row_h: int = ROW_H
    axis_h: int = AXIS_H


def _span(
    items: list[tuple[datetime | None, datetime | None]], start: datetime
) -> tuple[datetime, float]:
    ends = [seconds_between(start, e) or 0.0 for s, e in items if s is not None]
    return start, max([*ends, 0.001])


def build(
    run_start: datetime,
    tasks: list[TaskRecord] | None,
    summaries: list[dict[str, Any]],
    task_href: str,
    step_href: str,
    nodes: dict[int, Node] | None = None,
) -> Timeline:
    """``tasks`` (None when the run has too many) or else ``summaries`` as bars.

    ``task_href`` / ``step_href`` are format strings with ``{step}`` and ``{task}``.
    ``nodes``: task id -> the Ray node it ran on; with two nodes or more, tasks are grouped
    by node.
    """
    start = utc(run_start)
    rows: list[tuple[str, str, str, str, datetime | None, datetime | None]] = []
    headers: dict[int, str] = {}  # row index -> a group's header
    if tasks is not None and nodes and len(set(nodes.values())) > 1:
        tasks, headers = _by_node(tasks, nodes)
    if tasks is not None:
        for t in tasks:
            index = t.foreach_stack[-1]["index"] if t.foreach_stack else None
            label = f"{t.step_name}[{index}]" if index is not None else t.step_name
            href = task_href.format(step=t.step_name, task=t.task_id)
            if t.origin_task_id is not None:
                rows.append((label, t.pathspec, REUSED, href, None, None))
                continue
            node = nodes.get(t.task_id) if nodes else None
            what = f"{t.pathspec} on node {node}" if node is not None else t.pathspec
            rows.append((label, what, t.status.value, href, t.started_at, t.finished_at))
    else:
        from shipyard.ui.dag import step_status

        for s in summaries:
            label = f"{s['step_name']} ({s['tasks']} tasks)"
            href = step_href.format(step=s["step_name"], task="")
            reused = int(s.get("reused") or 0)
            state = REUSED if reused and reused == s["tasks"] else step_status(s)
            rows.append((label, s["step_name"], state, href, s["started_at"], s["finished_at"]))
    origin, total = _span([(r[4], r[5]) for r in rows], start)
    scale = (WIDTH - LABEL_W - 10) / total
    bars, groups = [], []
    line = 0  # the row a bar (or a group's header) is drawn on
    for i, (label, what, status, href, began, ended) in enumerate(rows):
        if i in headers:
            groups.append(Group(headers[i], AXIS_H + line * ROW_H))
            line += 1
        if status == REUSED:
            x, width = 0.0, 0.0
            title = f"{what}: reused from the origin run (it ran there: no time in this run)"
        elif began is None:
            x, width = 0.0, 0.0
            title = f"{what}: {status}, not started"
        else:
            offset = seconds_between(origin, began) or 0.0
            took = seconds_between(began, ended) or 0.0
            x, width = offset * scale, max(2.0, took * scale)
            title = f"{what}: {status}, {duration(took)} (from +{duration(offset)})"
        bars.append(Bar(shorten(label, 30), title, status, href, x, width, AXIS_H + line * ROW_H))
        line += 1
    ticks = [(i / 4 * total * scale, f"+{duration(i / 4 * total)}") for i in range(5)]
    height = AXIS_H + max(1, line) * ROW_H + 6
    return Timeline(bars, ticks, WIDTH, height, tasks is None, groups)


def _by_node(
    tasks: list[TaskRecord], nodes: dict[int, Node]
) -> tuple[list[TaskRecord], dict[int, str]]:
    """The tasks reordered node by node (nodes in the order they first served a task, each
    node's tasks in creation order; tasks with no node last), and each group's header by
    the index of its first row."""
    order: dict[Node | None, list[TaskRecord]] = {}
    for t in tasks:
        order.setdefault(nodes.get(t.task_id), []).append(t)
    unknown = order.pop(None, None)
    if unknown:
        order[None] = unknown
    ordered: list[TaskRecord] = []
    headers: dict[int, str] = {}
    for node, members in order.items():
        count = f"{len(members)} task{'s' if len(members) != 1 else ''}"
        name = f"node {node}" if node is not None else "no node recorded"
        headers[len(ordered)] = f"{name} · {count}"
        ordered.extend(members)
    return ordered, headers


__all__ = ["MAX_TASK_ROWS", "REUSED", "Bar", "Group", "Timeline", "build"]
