"""Processes on this machine."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (as anyone: a process of another
    user counts; ``kill(pid, 0)`` sends no signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # running, as someone else
        return True
    return True
