"""Why a task attempt failed, when the step's own exception does not say: the named causes.

An attempt whose step raised is recorded with the exception's class name, its message and
the user's traceback. Every other end has a **cause** of its own, one stable name from
:data:`CAUSES` in the error's ``type`` (what ``shipyard show``, ``shipyard logs`` and the UI
print), a message with the facts, and — for the causes where the process died — the last
lines of the attempt's log:

=====================  ==================================================================
cause                  when
=====================  ==================================================================
TimeoutError           the step ran longer than its ``@timeout``
TaskCrashed            a local task process died before reporting (its signal or status)
MemoryKilled           killed for memory: the kernel's OOM killer in the worker's memory
                       cgroup, or Ray's memory monitor (``ray.exceptions.OutOfMemoryError``)
NodeLost               the Ray node running the attempt died or left the cluster
WorkerCrashed          the Ray worker process died (``os._exit``, a segfault, a signal)
SnapshotImportError    the run's code snapshot did not import on the Ray node
TaskCancelled          Ray cancelled the task (Ctrl-C, or the run stopping)
RayFailure             any other failure Ray reports (the Ray exception's name in the text)
ClusterLost            the cluster's GCS stopped answering: the run fails, resumable elsewhere
=====================  ==================================================================

:func:`ray_failure` turns a Ray exception and what the post-mortem found on the node
(:class:`Evidence`) into the recorded error; it is a pure function, tested without Ray.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.flow.report import TaskError
from shipyard.store import loglines

TIMEOUT = "TimeoutError"
TASK_CRASHED = "TaskCrashed"
MEMORY_KILLED = "MemoryKilled"
NODE_LOST = "NodeLost"
WORKER_CRASHED = "WorkerCrashed"
SNAPSHOT_IMPORT = "SnapshotImportError"
TASK_CANCELLED = "TaskCancelled"
RAY_FAILURE = "RayFailure"
CLUSTER_LOST = "ClusterLost"

#: every named cause, with what it means (for the CLI and the UI)
CAUSES: dict[str, str] = {
    TIMEOUT: "the step ran longer than its @timeout; it was stopped",
    TASK_CRASHED: "the task process died before reporting",
    MEMORY_KILLED: "the task was killed for using more memory than it may",
    NODE_LOST: "the Ray node running the task died or left the cluster",
    WORKER_CRASHED: "the Ray worker process running the task died",
    SNAPSHOT_IMPORT: "the run's code snapshot did not import on the Ray node",
    TASK_CANCELLED: "Ray cancelled the task",
    RAY_FAILURE: "Ray reported a failure of its own",
    CLUSTER_LOST: "the whole Ray cluster stopped answering; the run can be resumed elsewhere",
}

#: lines of the log kept in the message of a cause where the process died
LOG_TAIL_LINES = 10
_LINE_CHARS = 300

_SIGNALS = {
    "SIGKILL": "was killed (out of memory, or kill -9)",
    "SIGSEGV": "crashed with a segmentation fault",
    "SIGABRT": "aborted",
    "SIGBUS": "crashed with a bus error",
}

#: what faulthandler writes to the task's stderr when the process dies of a signal
_FATAL = {
    "Segmentation fault": "SIGSEGV",
    "Aborted": "SIGABRT",
    "Bus error": "SIGBUS",
    "Floating-point exception": "SIGFPE",
    "Illegal instruction": "SIGILL",
}
_FATAL_LINE = re.compile(r"^Fatal Python error: (.+?)\s*$", re.MULTILINE)
_RAY_SIGNAL = re.compile(r"\*\*\* SIG[A-Z]+ received")
_NODE_ID = re.compile(r"node ID: ([0-9a-f]{16,})", re.IGNORECASE)


def exit_error(exitcode: int, *, timeout_seconds: float | None = None) -> TaskError:
    """The error dict recorded for an attempt. ``timeout_seconds`` when @timeout killed it."""
    if timeout_seconds is not None:
        return {
            "type": TIMEOUT,
            "message": f"the step ran longer than its @timeout of {timeout_seconds:g} s; "
            "its process group was killed",
            "traceback": "",
        }
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = _SIGNALS.get(name, "was killed by a signal")
        message = f"the task process {why} ({name})"
    else:
        message = f"the task process exited with status {exitcode} before reporting"
    return {"type": TASK_CRASHED, "message": message, "traceback": ""}


def log_tail(stdout: str, stderr: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of an attempt's output, both streams in the order they
    were written, without stamps (each cut to a few hundred characters). After a fatal
    signal, the lines up to faulthandler's report and the dying thread's first frames."""
    out, err = loglines.parse(stdout, "stdout"), loglines.parse(stderr, "stderr")
    texts = [line.text for line in err]
    fatal = next((i for i, t in enumerate(texts) if t.startswith("Fatal Python error:")), None)
    if fatal is None:
        merged = [line.text for line in loglines.interleave(stdout, stderr)]
    else:  # faulthandler's dump of every thread: keep the one that died, after the rest
        # (Ray's own handler may have written its report first, unstamped)
        start = next((i for i, t in enumerate(texts[:fatal]) if _RAY_SIGNAL.search(t)), fatal)
        current = next(
            (i for i in range(fatal, len(texts)) if texts[i].startswith("Current thread")), None
        )
        frames = [texts[fatal], *(texts[current : current + 4] if current is not None else [])]
        before = sorted(out + err[:start], key=lambda line: -1 if line.ns is None else line.ns)
        merged = [line.text for line in before][-max(1, lines - len(frames)) :] + frames
    return [text[:_LINE_CHARS] for text in merged[-lines:]]


def with_log_tail(message: str, tail: Sequence[str]) -> str:
    """``message`` followed by the last lines of the log (or a note that it is empty)."""
    if not tail:
        return f"{message}\n(the task wrote nothing to its log)"
    body = "\n".join(f"  | {line}" for line in tail)
    return f"{message}\nthe last lines of its log:\n{body}"


@dataclass
class Evidence:
    """What is known of a Ray attempt that did not report: from the driver (``ray_task_id``,
    ``request_mb``, ``node``: the node's id, address and custom resources as a label) and,
    when the node is still up, from a post-mortem task on it (``pid``; ``exit_code`` if the
    step called ``os._exit``; the memory cgroup's ``oom_kills`` during the attempt, its
    ``memory_limit`` and ``memory_peak`` in bytes, and ``cgroup``)."""

    ray_task_id: str = ""
    request_mb: int = 0
    node: str = ""
    pid: int | None = None
    exit_code: int | None = None
    oom_kills: int = 0
    memory_limit: int | None = None
    memory_peak: int | None = None
    cgroup: str = ""
    stdout: str = ""
    stderr: str = ""


def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**20:.0f} MiB"


def _fatal_signal(stderr: str) -> str | None:
    """The signal faulthandler reported in the task's stderr, if it did."""
    found = _FATAL_LINE.findall(loglines.strip(stderr))
    return _FATAL.get(found[-1]) if found else None


def node_of(message: str) -> str | None:
    """The node id a Ray message names (NodeDiedError says ``node ID: <hex>``)."""
    found = _NODE_ID.search(message)
    return found.group(1) if found else None


def _request(evidence: Evidence) -> str:
    if evidence.request_mb:
        return f"the step asked for @resources(memory={evidence.request_mb}) (MB)"
    return "the step asked for no memory (@resources(memory=...) is not set)"


def _where(evidence: Evidence) -> str:
    parts = [f"Ray task {evidence.ray_task_id}" if evidence.ray_task_id else ""]
    if evidence.pid is not None:
        parts.append(f"worker pid {evidence.pid}")
    if evidence.node:
        parts.append(f"node {evidence.node}")
    return ", ".join(p for p in parts if p)


def ray_failure(exc_names: Sequence[str], text: str, evidence: Evidence) -> TaskError:
    """The recorded error for a Ray attempt that ended with the Ray exception whose class
    and base classes are named ``exc_names`` (most derived first) and whose text is
    ``text``, given what the post-mortem found."""
    names = set(exc_names)
    text = text[:1500]
    where = _where(evidence)
    if "OutOfMemoryError" in names:  # Ray's memory monitor killed the worker
        cause = MEMORY_KILLED
        message = (
            f"Ray's memory monitor killed the worker ({where}); {_request(evidence)}; Ray: {text}"
        )
    elif names & {"NodeDiedError", "LocalRayletDiedError", "OwnerDiedError", "ObjectLostError"}:
        cause = NODE_LOST
        node = evidence.node or node_of(text) or "unknown"
        message = (
            f"the Ray node running the task was lost: node {node} "
            f"(Ray task {evidence.ray_task_id or '?'}); Ray: {exc_names[0]}: {text}"
        )
    elif "WorkerCrashedError" in names or "ActorDiedError" in names:
        if evidence.oom_kills > 0:
            cause = MEMORY_KILLED
            message = (
                f"the kernel's OOM killer ended the worker ({where}): its memory cgroup "
                f"{evidence.cgroup or '?'} allows {_mib(evidence.memory_limit)} and reached "
                f"{_mib(evidence.memory_peak)}; {_request(evidence)}"
            )
        else:
            cause = WORKER_CRASHED
            fatal = _fatal_signal(evidence.stderr)
            if evidence.exit_code is not None:
                how = f"the step called os._exit({evidence.exit_code})"
            elif fatal is not None:
                how = f"it died of {fatal}"
            else:
                how = "its exit status is unknown (Ray does not report it)"
            message = f"the Ray worker running the task died ({where}): {how}"
    elif "TaskCancelledError" in names:
        cause, message = TASK_CANCELLED, f"Ray cancelled the task ({where})"
    else:
        cause = RAY_FAILURE
        message = f"Ray: {exc_names[0] if exc_names else '?'}: {text}"
    tail = log_tail(evidence.stdout, evidence.stderr)
    return {"type": cause, "message": with_log_tail(message, tail), "traceback": ""}


__all__ = [
    "CLUSTER_LOST",
    "CAUSES",
    "LOG_TAIL_LINES",
    "MEMORY_KILLED",
    "NODE_LOST",
    "RAY_FAILURE",
    "SNAPSHOT_IMPORT",
    "TASK_CANCELLED",
    "TASK_CRASHED",
    "TIMEOUT",
    "WORKER_CRASHED",
    "Evidence",
    "exit_error",
    "log_tail",
    "node_of",
    "ray_failure",
    "with_log_tail",
]
