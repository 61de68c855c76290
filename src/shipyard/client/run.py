"""``Run``: one execution of a flow, possibly still in progress."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from shipyard.client.artifacts import ArtifactLoader, TaskData
from shipyard.client.errors import NotFound, NotInNamespace
from shipyard.client.namespaces import get_namespace, in_namespace
from shipyard.client.step import Step, StepSummary, summarize
from shipyard.client.task import Task
from shipyard.store import pathspec as _pathspec
from shipyard.store.context import Stores, default_stores
from shipyard.store.records import Node, RunRecord, RunStatus, TaskStatus, utc

_TAG = re.compile(r"^\S(.{0,253}\S)?$", re.DOTALL)


def check_tag(tag: str) -> str:
    """``tag`` if it is valid (1-255 characters, no leading/trailing space), else ValueError."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise ValueError(
            f"bad tag {tag!r}: a tag is 1-255 characters, not starting or ending with a space, "
            "e.g. 'baseline' or 'team:search'"
        )
    return tag


def run_not_found(ctx: Stores, flow_name: str, run_id: int) -> NotFound:
    pathspec = f"{flow_name}/{run_id}"
    latest = [r.run_id for r in ctx.meta.list_runs(flow_name, limit=5)]
    if latest:
        ids = ", ".join(map(str, latest))
        return NotFound(pathspec, f"run {pathspec} not found; latest runs of {flow_name}: {ids}")
    flows = ", ".join(ctx.meta.flow_names()) or "none yet"
    return NotFound(
        pathspec, f"run {pathspec} not found: flow {flow_name!r} has no runs; known flows: {flows}"
    )


class Run:
    """A run of a flow. Status, tags and tasks are read fresh on every access.

    >>> run = Run("DigitsFlow/3")                   # doctest: +SKIP
    >>> run.status, run.parameters, run["train"].task.data.score  # doctest: +SKIP
    """

    def __init__(self, pathspec: str) -> None:
        spec = _pathspec.parse(pathspec, min_depth=2, max_depth=2)
        ctx = default_stores()
        record = ctx.meta.get_run(spec.flow, spec.run_id or 0)
        if record is None:
            raise run_not_found(ctx, spec.flow, spec.run_id or 0)
        if not in_namespace(record.user, record.tags):
            raise NotInNamespace(record.pathspec, get_namespace())
        self._init(ctx, record)

    @classmethod
    def _from_record(cls, ctx: Stores, record: RunRecord) -> Run:
        run = cls.__new__(cls)
        run._init(ctx, record)
        return run

    @classmethod
    def _from_ids(cls, ctx: Stores, flow_name: str, run_id: int) -> Run:
        record = ctx.meta.get_run(flow_name, run_id)
        if record is None:
            raise run_not_found(ctx, flow_name, run_id)
        return cls._from_record(ctx, record)

    def _init(self, ctx: Stores, record: RunRecord) -> None:
        self._stores = ctx
        self._first = record
        self._loader = ArtifactLoader(ctx, record.flow_name, record.run_id)
        self.flow_name = record.flow_name
        self.id = record.run_id
        self.pathspec = record.pathspec

    # --- the record ------------------------------------------------------------------
    @property
    def record(self) -> RunRecord:
        """The run's current metadata row."""
        record = self._stores.meta.get_run(self.flow_name, self.id)
        if record is None:
            raise NotFound(self.pathspec, f"run {self.pathspec} no longer exists (gc?)")
        return record

    @property
    def status(self) -> RunStatus:
        """RUNNING, SUCCEEDED, FAILED, KILLED, or DEAD (its runtime stopped heartbeating)."""
        return self.record.status

    @property
    def successful(self) -> bool:
        return self.status is RunStatus.SUCCEEDED

    @property
    def finished(self) -> bool:
        """True unless the run is RUNNING (a DEAD run counts as finished: nothing runs it)."""
        return self.status is not RunStatus.RUNNING

    @property
    def created_at(self) -> datetime:
        return utc(self._first.created_at)

    @property
    def finished_at(self) -> datetime | None:
        value = self.record.finished_at
        return utc(value) if value else None

    @property
    def heartbeat_at(self) -> datetime | None:
        value = self.record.heartbeat_at
        return utc(value) if value else None

    @property
    def user(self) -> str:
        return self._first.user

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self._first.params)

    @property
    def graph(self) -> dict[str, Any]:
        """The run's DAG as the runtime recorded it (``order``, ``steps``, ``module``...)."""
        return self._first.graph

    @property
    def code_key(self) -> str | None:
        return self._first.code_key

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self.record.tags)

    @property
    def trigger(self) -> dict[str, Any] | None:
        """Why the run ran, as its ``current.trigger`` said (``type``: schedule, backfill,
        event, flow, manual; ``schedule``, ``scheduled_for``...), or None (started by hand)."""
        value = self._first.trigger
        return dict(value) if value is not None else None

    def add_tag(self, tag: str) -> None:
        self.add_tags([tag])

    def add_tags(self, tags: Iterable[str]) -> None:
        self._stores.meta.add_tags(self.id, [check_tag(t) for t in tags])

    def remove_tag(self, tag: str) -> None:
        self.remove_tags([tag])

    def remove_tags(self, tags: Iterable[str]) -> None:
        self._stores.meta.remove_tags(self.id, [check_tag(t) for t in tags])

    @property
    def origin_run(self) -> Run | None:
        """The run this one resumed, if any (None if it was deleted since)."""
        origin = self._first.origin_run_id
        if origin is None:
            return None
        record = self._stores.meta.get_run(self.flow_name, origin)
        return Run._from_record(self._stores, record) if record is not None else None

    # --- steps and tasks -------------------------------------------------------------
    def _order(self) -> list[str]:
        graph = self._first.graph
        order = list(graph.get("order") or graph.get("steps", {}))
        return [str(name) for name in order]

    def steps(self) -> list[Step]:
        """The steps that have at least one task, in topological order."""
        present = {t.step_name for t in self._stores.meta.list_tasks(self.id)}
        names = self._order() + sorted(present - set(self._order()))
        return [Step._make(self._stores, self, n, self._loader) for n in names if n in present]

    def step_summaries(self) -> list[StepSummary]:
        """Every step of the graph (tasks or not) with counts and times, in topological order."""
        by_step: dict[str, list[Any]] = {}
        for record in self._stores.meta.list_tasks(self.id):
            by_step.setdefault(record.step_name, []).append(record)
        nodes = self._first.graph.get("steps", {})
        names = self._order() + sorted(set(by_step) - set(self._order()))
        return [summarize(n, nodes.get(n, {}), by_step.get(n, [])) for n in names]

    def tasks(self, status: TaskStatus | None = None) -> list[Task]:
        """Every task of the run (or those with ``status`` now), in creation order."""
        records = self._stores.meta.list_tasks(self.id)
        if status is not None:
            records = [r for r in records if r.status is TaskStatus(status)]
        return [Task._from_record(self._stores, r, self._loader) for r in records]

    def nodes(self) -> dict[Node, int]:
        """``--executor ray``: the Ray nodes this run's tasks succeeded on, each with how
        many (tasks a resume reused are not counted: they ran in the origin run); empty
        for a local run."""
        counts: dict[Node, int] = {}
        for record in self._stores.meta.list_tasks(self.id):
            node = Node.from_fields(record.result) if record.origin_task_id is None else None
            if node is not None and record.status is TaskStatus.SUCCEEDED:
                counts[node] = counts.get(node, 0) + 1
        return counts

    def __getitem__(self, step: str) -> Step:
        names = self._order()
        if step in names or self._stores.meta.list_tasks(self.id, step):
            return Step._make(self._stores, self, step, self._loader)
        raise NotFound(
            f"{self.pathspec}/{step}",
            f"step {step!r} not found in {self.pathspec}; its steps: {', '.join(names)}",
        )

    def __contains__(self, step: object) -> bool:
        return step in self._order()

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps())

    @property
    def end_task(self) -> Task | None:
        """The successful task of the ``end`` step, if the run got that far."""
        graph_steps = self._first.graph.get("steps", {})
        ends = [n for n, node in graph_steps.items() if node.get("type") == "end"] or ["end"]
        for record in self._stores.meta.list_tasks(self.id, ends[0]):
            if record.status is TaskStatus.SUCCEEDED:
                return Task._from_record(self._stores, record, self._loader)
        return None

    @property
    def data(self) -> TaskData | None:
        """The end task's data (``run.data.model``), or None if the run has no end task."""
        task = self.end_task
        return task.data if task is not None else None

    def __repr__(self) -> str:
        return f"Run({self.pathspec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash(self.pathspec)
