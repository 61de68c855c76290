"""``Step``: the tasks one step of a run produced (one, or one per foreach item)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shipyard.client.artifacts import ArtifactLoader
from shipyard.client.errors import NotFound
from shipyard.client.task import Task
from shipyard.store import pathspec as _pathspec
from shipyard.store.context import Stores
from shipyard.store.records import TaskRecord, TaskStatus, utc

if TYPE_CHECKING:
    from shipyard.client.run import Run


@dataclass(frozen=True)
class StepSummary:
    """A step of a run at a glance (computed from one query, for tables and DAG views)."""

    name: str
    type: str  # "linear" | "split" | "foreach" | "join" | "end" (from the run's graph)
    next: tuple[str, ...]
    foreach: str | None
    tasks: int
    counts: dict[TaskStatus, int] = field(default_factory=dict)
    #: earliest start and latest end of the tasks that ran in this run (a resume's reused
    #: tasks ran in the origin run: their times are not counted)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: tasks a resume reused from the origin run
    reused: int = 0

    @property
    def done(self) -> int:
        return self.counts.get(TaskStatus.SUCCEEDED, 0)

    @property
    def status(self) -> TaskStatus | None:
        """The step's overall status, None if no task exists yet."""
        if not self.tasks:
            return None
        for status in (TaskStatus.FAILED, TaskStatus.KILLED, TaskStatus.RUNNING):
            if self.counts.get(status):
                return status
        if self.counts.get(TaskStatus.PENDING):
            return TaskStatus.RUNNING if self.done else TaskStatus.PENDING
        return TaskStatus.SUCCEEDED


def summarize(name: str, node: dict[str, Any], tasks: list[TaskRecord]) -> StepSummary:
    """The :class:`StepSummary` of step ``name`` (graph ``node``) over its ``tasks``."""
    ran = [t for t in tasks if t.origin_task_id is None]  # reused ones ran in the origin run
    started = [utc(t.started_at) for t in ran if t.started_at]
    finished = [utc(t.finished_at) for t in ran if t.finished_at]
    all_done = bool(ran) and len(finished) == len(ran)
    return StepSummary(
        name=name,
        type=str(node.get("type", "linear")),
        next=tuple(node.get("next") or ()),
        foreach=node.get("foreach"),
        tasks=len(tasks),
        counts=dict(Counter(t.status for t in tasks)),
        started_at=min(started) if started else None,
        finished_at=max(finished) if all_done else None,
        reused=len(tasks) - len(ran),
    )


class Step:
    """The tasks of one step of a run.

    >>> step = Run("DigitsFlow/3")["train"]                   # doctest: +SKIP
    >>> [t.data.score for t in step]                          # doctest: +SKIP
    """

    def __init__(self, pathspec: str) -> None:
        from shipyard.client.run import Run

        spec = _pathspec.parse(pathspec, min_depth=3, max_depth=3)
        run = Run(f"{spec.flow}/{spec.run_id}")
        step = run[spec.step or ""]
        self._init(step._stores, step.run, step.name, step._loader)

    @classmethod
    def _make(cls, ctx: Stores, run: Run, name: str, loader: ArtifactLoader) -> Step:
        step = cls.__new__(cls)
        step._init(ctx, run, name, loader)
        return step

    def _init(self, ctx: Stores, run: Run, name: str, loader: ArtifactLoader) -> None:
        self._stores = ctx
        self._loader = loader
        self.run = run
        self.name = name
        self.pathspec = f"{run.pathspec}/{name}"

    def _records(self) -> list[TaskRecord]:
        return self._stores.meta.list_tasks(self.run.id, self.name)

    def tasks(self) -> list[Task]:
        """Every task of the step, in creation order (foreach: item order)."""
        return [Task._from_record(self._stores, r, self._loader) for r in self._records()]

    @property
    def task(self) -> Task:
        """The step's task (the first one for a foreach step)."""
        records = self._records()
        if not records:
            raise NotFound(
                self.pathspec,
                f"step {self.pathspec} has no task yet (run status: {self.run.status.value})",
            )
        return Task._from_record(self._stores, records[0], self._loader)

    @property
    def summary(self) -> StepSummary:
        node = self.run.graph.get("steps", {}).get(self.name, {})
        return summarize(self.name, node, self._records())

    @property
    def status(self) -> TaskStatus | None:
        return self.summary.status

    @property
    def finished_at(self) -> datetime | None:
        return self.summary.finished_at

    @property
    def started_at(self) -> datetime | None:
        return self.summary.started_at

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks())

    def __len__(self) -> int:
        return len(self._records())

    def __getitem__(self, task_id: int) -> Task:
        for record in self._records():
            if record.task_id == task_id:
                return Task._from_record(self._stores, record, self._loader)
        return Task(f"{self.pathspec}/{task_id}")  # raises NotFound naming the tasks there

    def __repr__(self) -> str:
        return f"Step({self.pathspec!r})"
