"""Which tasks of a resumed run can reuse the origin run's work.

A task is reused (cloned, not run) when the origin has a successful task at the same step
and foreach position, its step is not at or after ``--step``, and every one of its inputs
was itself reused from exactly the origin task's inputs: so a task re-runs when anything
upstream of it re-ran.
"""

from __future__ import annotations

from typing import Any

from shipyard.flow.graph import Graph
from shipyard.store.records import TaskRecord, TaskStatus


class ResumePlan:
    """Built from the origin run's tasks; asked once per task the runtime creates."""

    def __init__(self, graph: Graph, origin_tasks: list[TaskRecord], step: str | None) -> None:
        self.done: dict[tuple[str, tuple[int, ...]], TaskRecord] = {
            (t.step_name, _position(t.foreach_stack)): t
            for t in origin_tasks
            if t.status is TaskStatus.SUCCEEDED
        }
        self.rerun: set[str] = set()
        todo = [step] if step is not None else []
        while todo:  # the step and everything downstream of it re-run
            name = todo.pop()
            if name not in self.rerun:
                self.rerun.add(name)
                todo.extend(graph[name].out)
        #: new task id -> the origin task it was cloned from
        self.origin_of: dict[int, int] = {}

    def candidate(
        self, step: str, stack: list[dict[str, Any]], inputs: list[int]
    ) -> TaskRecord | None:
        """The origin task to clone for this new task, or None to run it."""
        if step in self.rerun:
            return None
        origin = self.done.get((step, _position(stack)))
        if origin is None:
            return None
        mapped = [self.origin_of.get(i) for i in inputs]
        if any(m is None for m in mapped) or sorted(mapped) != sorted(origin.input_task_ids):  # type: ignore[type-var]
            return None
        return origin

    def summary(self, steps: dict[int, str], origin: str) -> str | None:
        """What was reused, for the terminal: ``reused 4 tasks of F/1: start, train ×3``
        (``steps``: every task of the new run -> its step); None if nothing was."""
        counts: dict[str, int] = {}
        for task_id in self.origin_of:
            counts[steps[task_id]] = counts.get(steps[task_id], 0) + 1
        if not counts:
            return None
        total = sum(counts.values())
        parts = [name if n == 1 else f"{name} ×{n}" for name, n in counts.items()]
        ran = len(steps) - total
        return (
            f"reused {total} task{'s' if total != 1 else ''} of {origin}: {', '.join(parts)}"
            f"; ran {ran} (reused tasks' time is the origin run's, not this run's)"
        )


def _position(stack: Any) -> tuple[int, ...]:
    return tuple(int(frame["index"]) for frame in stack)
