"""What a task process tells the runtime when it ends: a :class:`TaskResult`.

The task (task.py) pickles it into the pipe the zygote gave it; the runtime (runtime.py)
reads it with the news of the process's exit. A task that died before reporting gets one
made up by the runtime from its exit status (failures.py).
"""

from __future__ import annotations

from typing import Any, NotRequired, Required, TypedDict


class TaskError(TypedDict):
    """Why an attempt failed, as recorded with it (and shown by ``shipyard logs``)."""

    type: str  # the exception's class name, or TaskCrashed / TimeoutError
    message: str
    traceback: str  # the user's frames only; empty when the process died
    #: ``--executor ray``: where the attempt ran (as :class:`TaskResult`'s), when known
    node: NotRequired[str]
    node_ip: NotRequired[str]
    node_host: NotRequired[str]


class ForeachSplit(TypedDict):
    """A foreach step's items: one blob, one ``[offset, length]`` span per item."""

    num_splits: int
    items_key: str
    spans: list[list[int | None]]  # as the items' ArtifactRecord offset and length


class LogKeys(TypedDict, total=False):
    """The blob keys of an attempt's output, None when it printed nothing."""

    stdout_key: str | None
    stderr_key: str | None


class TaskResult(LogKeys, total=False):
    """One attempt's report: ``ok`` with ``artifacts`` (and ``foreach`` for a split), or not
    ``ok`` with ``error``; always ``duration`` and the log keys (:class:`LogKeys`)."""

    ok: Required[bool]
    error: TaskError
    artifacts: list[dict[str, Any]]  # ArtifactRecord fields
    foreach: ForeachSplit | None
    #: what plugins add to the report (``TaskContext.extras``): ``models``, ``cards``
    extras: dict[str, Any]
    duration: float
    #: ``--executor ray``: the id of the Ray node the attempt ran on, its IP address and
    #: host name (see :data:`NODE_KEYS`)
    node: str
    node_ip: str
    node_host: str


#: the keys of a result (and of a failed attempt's error) that say where it ran
NODE_KEYS = ("node", "node_ip", "node_host")


__all__ = ["NODE_KEYS", "ForeachSplit", "LogKeys", "TaskError", "TaskResult"]
