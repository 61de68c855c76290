"""What follows a finished task: the tasks to create next, worked out from the graph.

A linear step is followed by its target; a foreach split by one task per item, each with
its own frame on the foreach stack and a ranged pointer to its item (so it reads only that
item); a join waits here until every input has arrived (every branch, or every task of the
foreach it closes, for the same enclosing foreach position), then gets them in order.
"""

from __future__ import annotations

import json
from typing import Any

from shipyard.flow.graph import Graph, Node, NodeType
from shipyard.store.records import ArtifactRecord

#: a task to create: (step, foreach stack, input task ids, its foreach item or None)
NewTask = tuple[str, list[dict[str, Any]], list[int], ArtifactRecord | None]


class Successors:
    """Decides the tasks that follow finished ones; holds the joins still waiting."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        #: (join, enclosing foreach stack) -> the inputs arrived so far: (order, task id)
        self.waiting: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def after(
        self, task_id: int, step: str, stack: list[dict[str, Any]], result: dict[str, Any]
    ) -> list[NewTask]:
        """The tasks to create now that ``task_id`` (of ``step``, at ``stack``) succeeded
        with ``result`` (the task's report: ``result["foreach"]`` for a split)."""
        node = self.graph[step]
        if node.type is NodeType.END:
            return []
        if node.foreach is not None:
            return self._fan_out(node, task_id, stack, result["foreach"])
        new: list[NewTask] = []
        for target in node.out:
            child = self.graph[target]
            if child.is_join:
                new += self._arrive(child, task_id, step, stack)
            else:
                new.append((target, stack, [task_id], None))
        return new

    def _fan_out(
        self, node: Node, task_id: int, stack: list[dict[str, Any]], split: dict[str, Any]
    ) -> list[NewTask]:
        n = int(split["num_splits"])
        children: list[NewTask] = []
        for i, (start, length) in enumerate(split["spans"]):
            item = ArtifactRecord(
                name="input",
                key=split["items_key"],
                size=length,
                encoding="",
                type_name="",
                preview="",
                offset=start,
                length=length,
            )
            frame = {"step": node.name, "index": i, "num_splits": n}
            children.append((node.out[0], [*stack, frame], [task_id], item))
        return children

    def _arrive(
        self, join: Node, task_id: int, step: str, stack: list[dict[str, Any]]
    ) -> list[NewTask]:
        assert join.closes is not None
        split = self.graph[join.closes]
        if split.foreach is not None:  # inputs in foreach order
            outer, expected = stack[:-1], int(stack[-1]["num_splits"])
            order = int(stack[-1]["index"])
        else:  # inputs in the order the join's branches are declared
            outer, expected = stack, len(join.inputs)
            order = join.inputs.index(step)
        key = (join.name, json.dumps(outer, sort_keys=True))
        arrived = self.waiting.setdefault(key, [])
        arrived.append((order, task_id))
        if len(arrived) < expected:
            return []
        del self.waiting[key]
        return [(join.name, outer, [t for _, t in sorted(arrived)], None)]


__all__ = ["NewTask", "Successors"]
