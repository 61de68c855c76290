"""Plain records passed between the metadata store and its readers (runtime, client, CLI).

They are frozen dataclasses so that nothing outside ``store/`` can mistake them for live
database rows. Times are UTC ``datetime`` objects; JSON columns come back as Python values.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    #: never stored: a RUNNING run whose runtime stopped sending heartbeats
    DEAD = "dead"


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"


@dataclass(frozen=True)
class ArtifactRecord:
    """One named artifact of a task: a pointer to a content-addressed blob plus its preview."""

    name: str
    key: str  # blob key (content hash)
    size: int  # serialized size in bytes, before compression
    encoding: str  # how the blob decodes, e.g. "pickle5" / "pickle5+zstd"
    type_name: str  # e.g. "numpy.ndarray", "builtins.dict"
    preview: str  # short, human-readable; computed at write time, never by unpickling later
    #: a range inside the blob when several artifacts share one (foreach items); None = whole
    offset: int | None = None
    length: int | None = None
    #: the encoded bytes themselves, for a small value kept in its row instead of a blob
    #: (``key`` is still its content hash); None for a value in the blob store
    inline: bytes | None = None


@dataclass(frozen=True)
class RunRecord:
    flow_name: str
    run_id: int
    status: RunStatus  # DEAD is derived from heartbeat_at by the store when reading
    user: str
    created_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime | None
    params: dict[str, Any]
    tags: tuple[str, ...]
    graph: dict[str, Any]  # the validated DAG as JSON (see flow/graph.py: Graph.to_json)
    code_key: str | None  # blob key of the run's code snapshot
    origin_run_id: int | None  # the run this one resumed
    #: why it runs (None: by hand): {"type": "schedule"|"backfill"|"event"|"flow"|"manual", ...}
    trigger: dict[str, Any] | None = None

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}"


@dataclass(frozen=True)
class AttemptRecord:
    task_id: int
    attempt: int
    status: TaskStatus
    started_at: datetime
    finished_at: datetime | None
    pid: int | None
    #: {"type", "message", "traceback"} for a failed attempt
    error: dict[str, Any] | None
    stdout_key: str | None  # blob key of the captured stdout once the attempt ended
    stderr_key: str | None


@dataclass(frozen=True)
class Node:
    """The Ray node an attempt ran on (``--executor ray``), as the attempt recorded it:
    ``id`` (Ray's node id, hex), ``ip`` and ``host`` (its host name); ``str()`` is the
    readable form ``shipyard show`` prints, ``1f2e3d4c (10.0.0.7, worker-1)``."""

    id: str
    ip: str | None = None
    host: str | None = None

    @property
    def short(self) -> str:
        """The first 8 characters of the id, as ``ray status`` abbreviates it."""
        return self.id[:8]

    @classmethod
    def from_fields(cls, fields: dict[str, Any] | None) -> Node | None:
        """From a task's result (or a failed attempt's error): its ``node``, ``node_ip``
        and ``node_host``; None when it ran locally (no ``node``)."""
        if not fields or not fields.get("node"):
            return None
        return cls(str(fields["node"]), fields.get("node_ip"), fields.get("node_host"))

    def __str__(self) -> str:
        where = ", ".join(p for p in (self.ip, self.host) if p)
        return f"{self.short} ({where})" if where else self.short


_LOG_SUFFIX = {"stdout": "out", "stderr": "err"}


def live_log(log_dir: str, attempt: int, suffix: str) -> Path:
    """``<log_dir>.<attempt>.<suffix>``: the runtime gives every task a name in its run's
    log directory (``logs/<flow>/<run>/<step>.<n>``), so one directory per run holds every
    task's live logs. A ``log_dir`` that is a directory (runs recorded before 0.1.1) holds
    ``<attempt>.<suffix>``."""
    path = Path(log_dir)
    if path.is_dir():
        return path / f"{attempt}.{suffix}"
    return path.with_name(f"{path.name}.{attempt}.{suffix}")


@dataclass(frozen=True)
class TaskRecord:
    flow_name: str
    run_id: int
    step_name: str
    task_id: int
    status: TaskStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int  # how many attempts have started
    #: one entry per enclosing foreach, outermost first: {"step", "index", "num_splits"}
    foreach_stack: tuple[dict[str, Any], ...]
    input_task_ids: tuple[int, ...]
    origin_task_id: int | None  # set when a resume reused (cloned) this task
    #: what the task produced for the runtime: {"num_splits": n} for a foreach split, etc.
    result: dict[str, Any] = field(default_factory=dict)
    #: where live logs are written while the task runs (local path), until stdout_key is
    #: set: see :func:`live_log`
    log_dir: str | None = None

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"

    def live_log(self, home: Path, attempt: int, stream: str) -> Path:
        """The file the runtime writes ``stream`` ("stdout" or "stderr") of a running
        ``attempt`` to (it is uploaded to the blob store, and removed, when it ends)."""
        if self.log_dir:
            return live_log(self.log_dir, attempt, _LOG_SUFFIX[stream])
        # runs recorded before log_dir existed (schema 0001)
        legacy = home / "logs" / self.flow_name / str(self.run_id) / self.step_name
        return legacy / str(self.task_id) / f"{attempt}.{_LOG_SUFFIX[stream]}"


def clean_tags(tags: Iterable[str]) -> list[str]:
    """Unique tags in first-seen order; each a non-empty string of at most 255 characters."""
    seen: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > 255:
            raise ValueError(f"bad tag {tag!r}: a tag is a non-empty string of <= 255 characters")
        seen[tag] = None
    return list(seen)


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now() -> datetime:
    """The current time as an aware UTC datetime, as the store records times."""
    return datetime.now(UTC)
