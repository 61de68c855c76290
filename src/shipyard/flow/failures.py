"""Describe a task attempt that died without reporting (crash, signal, timeout)."""

from __future__ import annotations

import signal

from shipyard.flow.report import TaskError

_SIGNALS = {
    "SIGKILL": "was killed (out of memory, or kill -9)",
    "SIGSEGV": "crashed with a segmentation fault",
    "SIGABRT": "aborted",
    "SIGBUS": "crashed with a bus error",
}


def exit_error(exitcode: int, *, timeout_seconds: float | None = None) -> TaskError:
    """The error dict recorded for an attempt. ``timeout_seconds`` when @timeout killed it."""
    if timeout_seconds is not None:
        return {
            "type": "TimeoutError",
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
    return {"type": "TaskCrashed", "message": message, "traceback": ""}
