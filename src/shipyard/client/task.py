"""``Task``: one execution of a step (one foreach item), its attempts, logs and artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from shipyard.client.artifacts import ArtifactLoader, DataArtifact, TaskData
from shipyard.client.errors import NotFound, NotInNamespace
from shipyard.client.namespaces import get_namespace, in_namespace
from shipyard.store import loglines as _lines
from shipyard.store import pathspec as _pathspec
from shipyard.store.blobs import BlobNotFound
from shipyard.store.context import Stores, default_stores
from shipyard.store.records import AttemptRecord, Node, TaskRecord, TaskStatus, utc

if TYPE_CHECKING:
    from shipyard.client.run import Run
    from shipyard.client.step import Step

Stream = Literal["stdout", "stderr"]
_SUFFIX = {"stdout": "out", "stderr": "err"}
_FINISHED = (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.KILLED)


class Attempt:
    """One attempt of a task (0-based ``number``); logs are read when asked for."""

    def __init__(self, task: Task, record: AttemptRecord) -> None:
        self.task = task
        self.record = record

    @property
    def number(self) -> int:
        """0-based."""
        return self.record.attempt

    @property
    def status(self) -> TaskStatus:
        return self.record.status

    @property
    def started_at(self) -> datetime:
        return utc(self.record.started_at)

    @property
    def finished_at(self) -> datetime | None:
        return utc(self.record.finished_at) if self.record.finished_at else None

    @property
    def pid(self) -> int | None:
        return self.record.pid

    @property
    def error(self) -> dict[str, Any] | None:
        """``{"type", "message", "traceback"}`` if this attempt failed."""
        return self.record.error

    @property
    def node(self) -> Node | None:
        """The Ray node this attempt ran on (``--executor ray``), None for a local one or
        one whose node is not known (its worker died before it could say)."""
        if self.record.status is TaskStatus.SUCCEEDED:
            return Node.from_fields(self.task.record.result)
        return Node.from_fields(self.record.error)

    @property
    def stdout(self) -> str:
        return self.task.logs(self.record.attempt, "stdout")

    @property
    def stderr(self) -> str:
        return self.task.logs(self.record.attempt, "stderr")

    def __repr__(self) -> str:
        return f"Attempt({self.task.pathspec!r}, {self.record.attempt}, {self.status.value})"


class Task:
    """A task of a run, read from the metadata store (statuses are never cached).

    >>> task = Task("DigitsFlow/3/train/17")   # doctest: +SKIP
    >>> task.data.score, task.successful, task.stdout[-200:]  # doctest: +SKIP
    """

    def __init__(self, pathspec: str) -> None:
        spec = _pathspec.parse(pathspec, min_depth=4)
        ctx = default_stores()
        record = ctx.meta.get_task(spec.task_id or 0)
        if (
            record is None
            or record.flow_name != spec.flow
            or record.run_id != spec.run_id
            or record.step_name != spec.step
        ):
            raise _task_not_found(ctx, str(spec))
        run = ctx.meta.get_run(spec.flow, record.run_id)
        if run is not None and not in_namespace(run.user, run.tags):
            raise NotInNamespace(str(spec), get_namespace())  # as Run() and Step() are
        self._init(ctx, record, ArtifactLoader(ctx, spec.flow, record.run_id))

    @classmethod
    def _from_record(cls, ctx: Stores, record: TaskRecord, loader: ArtifactLoader) -> Task:
        task = cls.__new__(cls)
        task._init(ctx, record, loader)
        return task

    def _init(self, ctx: Stores, record: TaskRecord, loader: ArtifactLoader) -> None:
        self._stores = ctx
        self._first = record
        self._loader = loader
        self._artifacts: dict[str, DataArtifact] | None = None
        self._data: TaskData | None = None
        self.flow_name = record.flow_name
        self.run_id = record.run_id
        self.step_name = record.step_name
        self.id = record.task_id
        self.pathspec = record.pathspec

    # --- the record, fresh -----------------------------------------------------------
    @property
    def record(self) -> TaskRecord:
        """The task's current metadata row."""
        record = self._stores.meta.get_task(self.id)
        if record is None:
            raise NotFound(self.pathspec, f"task {self.pathspec} no longer exists (gc?)")
        return record

    @property
    def status(self) -> TaskStatus:
        return self.record.status

    @property
    def successful(self) -> bool:
        return self.status is TaskStatus.SUCCEEDED

    @property
    def finished(self) -> bool:
        """Succeeded, failed or killed: the task will not change any more."""
        return self.status in _FINISHED

    @property
    def created_at(self) -> datetime:
        return utc(self._first.created_at)

    @property
    def started_at(self) -> datetime | None:
        value = self.record.started_at
        return utc(value) if value else None

    @property
    def finished_at(self) -> datetime | None:
        value = self.record.finished_at
        return utc(value) if value else None

    @property
    def index(self) -> int | None:
        """The index of this task's item in the innermost enclosing foreach, else None."""
        stack = self._first.foreach_stack
        return int(stack[-1]["index"]) if stack else None

    @property
    def foreach_stack(self) -> tuple[dict[str, Any], ...]:
        return self._first.foreach_stack

    @property
    def origin_pathspec(self) -> str | None:
        """For a task a resume reused: the task it was cloned from."""
        origin = self._first.origin_task_id
        if origin is None:
            return None
        record = self._stores.meta.get_task(origin)
        return record.pathspec if record is not None else None

    @property
    def run(self) -> Run:
        from shipyard.client.run import Run

        return Run._from_ids(self._stores, self.flow_name, self.run_id)

    @property
    def parent(self) -> Step:
        return self.run[self.step_name]

    # --- attempts and logs -----------------------------------------------------------
    @property
    def attempts(self) -> list[Attempt]:
        return [Attempt(self, r) for r in self._stores.meta.list_attempts(self.id)]

    @property
    def node(self) -> Node | None:
        """The Ray node the latest attempt ran on (``--executor ray``): ``.id``, ``.ip``,
        ``.host``; ``str(task.node)`` is ``1f2e3d4c (10.0.0.7, worker-1)``. None for a task
        that ran locally. A task a resume reused says where it ran in the origin run."""
        attempts = self.attempts
        return attempts[-1].node if attempts else None

    @property
    def exception(self) -> dict[str, Any] | None:
        """The latest attempt's error ``{"type", "message", "traceback"}`` if it failed."""
        attempts = self._stores.meta.list_attempts(self.id)
        return attempts[-1].error if attempts else None

    def logs(self, attempt: int | None = None, stream: Stream = "stdout") -> str:
        """An attempt's log (default: the latest): the stored blob once the attempt ended,
        the live file while it runs, ``""`` if there is neither."""
        return _lines.strip(self._raw_log(attempt, stream))

    def loglines(
        self, stream: Stream = "stdout", as_unicode: bool = True, *, attempt: int | None = None
    ) -> Iterator[tuple[datetime | None, str | bytes]]:
        """``(when it was written, line)`` for each line of an attempt's log (default: the
        latest), as Metaflow's ``Task.loglines`` (``as_unicode=False``: lines as UTF-8
        bytes); the time is None for logs recorded before shipyard stamped lines."""
        for line in _lines.parse(self._raw_log(attempt, stream), stream):
            yield line.time, line.text if as_unicode else line.text.encode("utf-8")

    def output(
        self, attempt: int | None = None, stream: Literal["both", "stdout", "stderr"] = "both"
    ) -> list[_lines.LogLine]:
        """An attempt's output (default: the latest): both streams interleaved in the order
        they were written, or one: ``LogLine(stream, ns, text)`` each (``.time`` a UTC
        datetime, None for logs recorded before shipyard stamped lines)."""
        if stream == "both":
            out, err = self._raw_log(attempt, "stdout"), self._raw_log(attempt, "stderr")
            return list(_lines.interleave(out, err))
        return _lines.parse(self._raw_log(attempt, stream), stream)

    def _raw_log(self, attempt: int | None, stream: Stream) -> str:
        """The log as stored, stamps included (:mod:`shipyard.store.loglines`)."""
        if stream not in _SUFFIX:
            raise ValueError(f"stream must be 'stdout' or 'stderr', got {stream!r}")
        for retry in (False, True):
            attempts = {a.attempt: a for a in self._stores.meta.list_attempts(self.id)}
            if not attempts:
                return ""
            number = max(attempts) if attempt is None else attempt
            record = attempts.get(number)
            if record is None:
                have = ", ".join(map(str, sorted(attempts)))
                raise NotFound(
                    self.pathspec, f"task {self.pathspec} has no attempt {number}; it has {have}"
                )
            key = record.stdout_key if stream == "stdout" else record.stderr_key
            if key:
                try:
                    return self._stores.blobs.get(key).decode("utf-8", "replace")
                except BlobNotFound:
                    return ""
            try:
                live = self.record.live_log(self._stores.home, number, stream)
                return live.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                if retry:  # the file was uploaded and removed as we looked: read the blob
                    return ""
        return ""

    @property
    def stdout(self) -> str:
        """The latest attempt's standard output."""
        return self.logs(None, "stdout")

    @property
    def stderr(self) -> str:
        """The latest attempt's standard error."""
        return self.logs(None, "stderr")

    # --- artifacts -------------------------------------------------------------------
    @property
    def artifacts(self) -> dict[str, DataArtifact]:
        """``name -> DataArtifact`` (recorded when the task succeeded; kept from then on)."""
        if self._artifacts is not None:
            return self._artifacts
        records = self._stores.meta.list_artifacts(self.id)
        artifacts = {r.name: DataArtifact(r, self.pathspec, self._loader) for r in records}
        if records and self.successful:  # immutable from now on
            self._artifacts = artifacts
        return artifacts

    @property
    def data(self) -> TaskData:
        """``task.data.<name>`` loads one artifact on first access and keeps it."""
        if self._data is not None:
            return self._data
        data = TaskData(self.artifacts, self.pathspec)
        if self._artifacts is not None:
            self._data = data
        return data

    def __getitem__(self, name: str) -> DataArtifact:
        artifacts = self.artifacts
        if name not in artifacts:
            have = ", ".join(sorted(artifacts)) or "none"
            raise NotFound(
                f"{self.pathspec}:{name}",
                f"task {self.pathspec} has no artifact {name!r}; its artifacts: {have}",
            )
        return artifacts[name]

    def __contains__(self, name: object) -> bool:
        return name in self.artifacts

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self.artifacts.values())

    def __repr__(self) -> str:
        return f"Task({self.pathspec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.pathspec == self.pathspec

    def __hash__(self) -> int:
        return hash(self.pathspec)


def _task_not_found(ctx: Stores, pathspec: str) -> NotFound:
    spec = _pathspec.parse(pathspec, min_depth=4)
    run = ctx.meta.get_run(spec.flow, spec.run_id or 0)
    if run is None:
        return NotFound(
            pathspec, f"task {pathspec} not found: run {spec.flow}/{spec.run_id} does not exist"
        )
    ids = [t.task_id for t in ctx.meta.list_tasks(run.run_id, spec.step)]
    shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
    where = f"{spec.flow}/{spec.run_id}/{spec.step}"
    return NotFound(
        pathspec,
        f"task {pathspec} not found; tasks of {where}: {shown}"
        if ids
        else f"task {pathspec} not found; {where} has no tasks",
    )
