"""A worker dies with its host: what a worker does so that ``kill -9`` of the host leaves
nothing running.

Three checks, each covering what the others cannot:

- **``PR_SET_PDEATHSIG`` = SIGKILL** (:func:`die_with_host`): the kernel kills the worker when
  the host goes, even while ``load()`` holds the GIL for seconds and even if the service
  ignores SIGTERM. It follows the *thread* that forked the worker, not the process: the host
  forks every worker on its event loop's thread (asyncio's subprocess transport calls
  ``fork`` there; under uvicorn that is the main thread), which lives as long as the host.
- **the parent's pid, compared** right after setting it: the host may have died between the
  fork and the ``prctl`` (the worker was then re-parented, and no signal will ever come), so
  a worker whose parent is no longer the host it was started by exits at once. The same
  comparison runs again after isolation and once more after ``load()``: a service whose
  ``load()`` changed its user id (which clears the setting) and whose host died meanwhile
  must not start serving nobody.
- **the host's connection closing** (``Worker``): once READY was sent, the host keeps one
  connection per worker for the worker's whole life, so its end means nobody can reach the
  worker again; the worker drains and exits. This holds when the kernel setting was cleared
  by the service's own code after start.

Workers the host started that still survive (a kernel without ``prctl``, a setting cleared
during ``load()``) are stopped by the next host on the same home (:mod:`hostfile`).
"""

from __future__ import annotations

import os
import signal
import sys

#: ``prctl(2)`` option: the signal this process gets when its parent thread exits
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
#: a worker's exit status when its host had already gone when it looked
ORPHANED = 4


def die_with_host(host_pid: int) -> None:
    """Have the kernel SIGKILL this process when its host exits, then exit now (status
    :data:`ORPHANED`) if the host is already gone. Call it again after anything that may
    have cleared the setting (a change of user or capabilities)."""
    if sys.platform == "linux":
        from shipyard.serve import _linux as linux

        linux.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    exit_if_orphaned(host_pid)


def exit_if_orphaned(host_pid: int) -> None:
    """Exit (status :data:`ORPHANED`) unless ``host_pid`` is still this process's parent."""
    if os.getppid() != host_pid:
        os._exit(ORPHANED)  # nothing of the service's may run for nobody: no cleanup handlers


def death_signal() -> int:
    """The parent-death signal set for this process (0: none), for tests and diagnostics."""
    if sys.platform != "linux":
        return 0
    import ctypes

    from shipyard.serve import _linux as linux

    value = ctypes.c_int(0)
    linux.prctl(PR_GET_PDEATHSIG, ctypes.addressof(value))
    return value.value


__all__ = ["ORPHANED", "death_signal", "die_with_host", "exit_if_orphaned"]
