"""The spawner: ``python -m shipyard.cli.spawner``, a fresh process that forks one
launcher per scheduled run.

A fresh interpreter per run (the launcher, then ``python -m shipyard run`` under it) cost
about 1.2 CPU-seconds per trivial run, most of it imports. The scheduler starts this process
once (fresh, never forked from the host: the host has threads and an event loop); it imports
the launcher, the stores and the ``shipyard`` command line up front, starts no thread, opens
no database, and then reads requests, one JSON line each on its stdin::

    {"fire": 12, "token": "...", "env": {...}, "log": "/home/.../12.log"}

(``env`` only when it differs from the previous request's: a burst of a hundred fires
is a few kilobytes on the pipe, not a hundred environments.)

For each it forks a child and answers ``{"fire": 12, "pid": 345}`` on its stdout. The child
starts a session of its own, points its output at ``log``, takes ``env`` as its whole
environment (the host's allow-list) and does what :mod:`shipyard.schedules.launch` does,
the run itself forked from it too (not a second interpreter; see :func:`launch.main`).
It exits when its stdin closes (the scheduler stopped); its children keep running.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

from shipyard.schedules import launch

#: runs ``shipyard ARGS...`` in this process and returns its exit code (the CLI layer's)
Command = Callable[[list[str]], int]


def preload() -> None:
    """Import what a launcher and its run need (the command line imports itself)."""
    import shipyard.flow.runtime  # noqa: F401
    import shipyard.store.blobs  # noqa: F401
    import shipyard.store.code  # noqa: F401
    import shipyard.store.meta  # noqa: F401


def _reap(_signum: int = 0, _frame: Any = None) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(request: dict[str, Any], channel: tuple[BinaryIO, BinaryIO], command: Command) -> int:
    for stream in channel:
        stream.close()
    os.setsid()
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ.clear()
    os.environ.update(request["env"])
    return launch.main([str(request["fire"]), request["token"]], command=command)


def serve(requests: BinaryIO, replies: BinaryIO, command: Command) -> None:
    """Fork a launcher per request line until ``requests`` ends; ``command`` runs the
    ``shipyard run`` of each (in a process forked from the launcher)."""
    signal.signal(signal.SIGCHLD, _reap)
    env: dict[str, str] = {}
    for line in requests:
        try:
            request = json.loads(line)
        except ValueError:
            print(f"spawner: not a request: {line[:200]!r}", file=sys.stderr, flush=True)
            continue
        env = request.setdefault("env", env)  # a request without one: the last one sent
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(request, (requests, replies), command)
            except BaseException:  # noqa: BLE001 - never return into the spawner's loop
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code & 0xFF)
        replies.write(json.dumps({"fire": request.get("fire"), "pid": pid}).encode() + b"\n")
        replies.flush()


def main(command: Command) -> int:
    """The spawner's process (see the module); ``command``: as for :func:`serve`."""
    if sys.path and sys.path[0] == os.getcwd():  # ``-m`` put the start directory first;
        del sys.path[0]  # a run has its snapshot's there instead
    preload()
    # the protocol gets its own descriptors; 0 and 1 go to /dev/null and stderr
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    serve(requests, replies, command)
    return 0


__all__ = ["Command", "main", "preload", "serve"]
