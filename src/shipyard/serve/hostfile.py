"""Which host runs on a home, and which workers are its: ``SHIPYARD_HOME/serve/host.json``.

A host *claims* its home at start (:func:`claim`):

1. it takes ``serve/host.lock`` (``flock``, held for the host's life; the kernel drops it when
   the host dies, even by ``kill -9``). A second host on the same home refuses to start
   (:class:`HostBusy` names the running host's pid and the fix);
2. it reads the record the previous host of this home left, if it did not stop cleanly, and
   stops that host's leftover workers: a process is one only if it is the recorded worker
   (the same pid *and* the same start time in ``/proc/PID/stat``, so a reused pid is never
   mistaken) or a worker started with that host's id (``--host-id`` on its command line);
   processes of another host on the same machine (another home) match neither;
3. it writes its own record (its random id, pid and start time; mode 0600, written to a
   temporary file and renamed, so a reader never sees half of it), and adds each worker it
   starts (:meth:`HostRecord.add_worker`).

A host that stops cleanly removes its record (:meth:`HostRecord.release`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.serve.errors import ServeError

log = logging.getLogger("shipyard.serve")

RECORD = "host.json"
LOCK = "host.lock"
#: how long a claiming host waits for the leftovers it killed to be gone
_STOP_SECONDS = 10.0


class HostBusy(ServeError):
    """Another host runs on this home: two would start every deployment twice."""


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, ``/proc/PID/stat`` field 22),
    or None when there is no such live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def _command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def workers_of(host_id: str) -> dict[int, int]:
    """The live worker processes started with ``--host-id host_id``: pid -> start time."""
    found: dict[int, int] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            argv = _command_line(int(entry.name))
            if "shipyard.serve.worker" not in argv:
                continue
            with contextlib.suppress(ValueError, IndexError):
                if argv[argv.index("--host-id") + 1] == host_id:
                    started = start_time(int(entry.name))
                    if started is not None:
                        found[int(entry.name)] = started
    return found


@dataclass
class HostRecord:
    """This host's entry in its home: its id, pid, start time, and the workers it started."""

    path: Path
    host_id: str
    pid: int
    started: int | None
    workers: dict[int, int | None] = field(default_factory=dict)
    _lock_fd: int | None = None

    def to_json(self) -> dict[str, Any]:
        """What ``host.json`` holds."""
        return {
            "id": self.host_id,
            "pid": self.pid,
            "start_time": self.started,
            "workers": [{"pid": p, "start_time": s} for p, s in sorted(self.workers.items())],
        }

    def add_worker(self, pid: int) -> None:
        """Record a worker just started (and forget those that have exited)."""
        self.workers = {p: s for p, s in self.workers.items() if s is None or start_time(p) == s}
        self.workers[pid] = start_time(pid)
        self.write()

    def write(self) -> None:
        """Replace ``host.json`` in one rename; mode 0600 (it names processes to kill)."""
        temporary = self.path.with_name(f".{self.path.name}.{self.pid}")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.to_json(), fh)
        os.replace(temporary, self.path)

    def release(self) -> None:
        """The host stopped cleanly (its workers with it): remove the record, drop the lock."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._lock_fd)  # closing the descriptor releases the flock
        self._lock_fd = None


def claim(home: Path, host_id: str) -> tuple[HostRecord, list[int]]:
    """Claim ``home`` for the host ``host_id`` (this process): take the lock, stop the
    leftovers of the host that ran here before, write the record. Returns the record and
    the pids stopped. Raises :class:`HostBusy` if another host runs on ``home``."""
    directory = home / "serve"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RECORD
    fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(home, _read(path)) from None
        previous = _read(path)
        if previous and previous.get("pid") != os.getpid() and _alive(previous):
            # the lock is free but its host still runs (it is stopping): wait for it
            raise _busy(home, previous)
        stopped = stop_leftovers(previous) if previous else []
        record = HostRecord(path, host_id, os.getpid(), start_time(os.getpid()), _lock_fd=fd)
        record.write()
    except BaseException:
        os.close(fd)
        raise
    return record, stopped


def stop_leftovers(previous: dict[str, Any]) -> list[int]:
    """SIGKILL the workers of the dead host ``previous`` (its ``host.json``) that still run,
    each with its process group, and wait until they are gone. Returns their pids."""
    found: dict[int, int] = {}
    for worker in previous.get("workers", []):
        pid, started = worker.get("pid"), worker.get("start_time")
        if isinstance(pid, int) and started is not None and start_time(pid) == started:
            found[pid] = started
    if isinstance(previous.get("id"), str):
        found.update(workers_of(previous["id"]))
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # a worker leads its own process group (the host starts it in a new session):
            # what the service started goes with it
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + _STOP_SECONDS
    while time.monotonic() < deadline and any(start_time(p) == s for p, s in found.items()):
        time.sleep(0.02)
    if found:
        log.warning(
            "stopped %d leftover worker(s) of the host that ran on this home before "
            "(pid %s, gone without stopping them): %s",
            len(found),
            previous.get("pid"),
            ", ".join(str(p) for p in sorted(found)),
        )
    return sorted(found)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(record: dict[str, Any]) -> bool:
    pid, started = record.get("pid"), record.get("start_time")
    return isinstance(pid, int) and started is not None and start_time(pid) == started


def _busy(home: Path, record: dict[str, Any] | None) -> HostBusy:
    who = f" (pid {record.get('pid')})" if record else ""
    return HostBusy(
        f"another shipyard host is running on {home}{who}: two hosts on one home would each "
        f"start every deployment; stop that one first, or give this one another home "
        f"(SHIPYARD_HOME=...)"
    )


__all__ = ["HostBusy", "HostRecord", "claim", "start_time", "stop_leftovers", "workers_of"]
