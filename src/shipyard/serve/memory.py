"""A replica's memory limit (``shipyard deploy --memory 512M``), enforced by the host.

Where the host can make a memory cgroup (root, with cgroup v1's ``memory`` controller or a
cgroup2 hierarchy), each replica gets one of its own under a parent the host owns
(``shipyard-<host id>``): the limit is ``memory.limit_in_bytes`` (and
``memory.memsw.limit_in_bytes``, so swap is no way around it) or ``memory.max``, and the
kernel's OOM killer stops a worker that goes over it. Elsewhere the host reads the resident
memory of the worker's process group every second and kills the group when it is over.
Never ``RLIMIT_AS``: BLAS and torch reserve address space they never touch.

The host writes the worker's pid into its cgroup right after it starts, before the worker
isolates itself (``isolation.py``) or its ``load()`` allocates anything. A cgroup is removed
when its replica stops; the parent when the host closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("shipyard.serve")

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: how often the fallback reads a worker's resident memory
POLL_INTERVAL = 1.0

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
#: below this a Python worker cannot even import its service
MIN_LIMIT = 32 << 20


class SizeError(ValueError):
    """A memory size that does not parse (or is too small to run a worker)."""


def parse_size(text: str, *, minimum: int = MIN_LIMIT, what: str = "memory size") -> int:
    """``"512M"``, ``"1G"``, ``"1.5GiB"``, ``"256MB"``, ``"268435456"`` -> bytes (K, M, G, T
    are powers of 1024), at least ``minimum``. Raises :class:`SizeError` naming ``what``, the
    value and the expected form."""
    match = _SIZE.match(text)
    if match is None:
        raise SizeError(f"{what} {text!r} is not a size: use e.g. 512M or 2G")
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size < minimum:
        raise SizeError(f"{what} {text!r} is below the minimum of {format_size(minimum)}")
    return size


def format_size(size: int) -> str:
    """Bytes as people say them: ``512 MB``, ``1.5 GB``."""
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} bytes"


def exceeded(limit: int) -> str:
    """The reason a replica over its limit was stopped, as the deployment's events say it."""
    return f"the worker exceeded its memory limit of {format_size(limit)} and was killed"


@dataclass(frozen=True)
class Enforcement:
    """How this host enforces ``--memory``: ``cgroup-v1``, ``cgroup-v2`` or ``rss-poll``."""

    kind: str
    #: the cgroup this host's replicas go under (None for rss-poll)
    parent: Path | None
    why: str = ""

    def message(self) -> str:
        """The line the host logs at start."""
        if self.parent is not None:
            return (
                f"replica memory limits: enforced by {self.kind} memory cgroups under {self.parent}"
            )
        return (
            "replica memory limits: enforced by polling each worker's RSS every "
            f"{POLL_INTERVAL:g} s (no memory cgroup: {self.why})"
        )

    def to_json(self) -> dict[str, str]:
        """For ``/readyz``-style reports."""
        return {"kind": self.kind, "parent": str(self.parent or "")}


def detect(host_id: str, *, root: Path = CGROUP_ROOT, cgroups: bool = True) -> Enforcement:
    """How this host can enforce limits: a memory cgroup hierarchy it may write to, else the
    poller (``cgroups=False``: the poller, as tests ask)."""
    if not cgroups:
        return Enforcement("rss-poll", None, "disabled")
    if (root / "cgroup.controllers").exists():  # cgroup2 mounted at the root
        kind, base = "cgroup-v2", root
    elif (root / "memory" / "memory.limit_in_bytes").exists():
        kind, base = "cgroup-v1", root / "memory"
    else:
        return Enforcement("rss-poll", None, f"no memory controller under {root}")
    if kind == "cgroup-v2" and "memory" not in _words(root / "cgroup.subtree_control"):
        # a container's cgroup2 root often holds processes and so cannot hand controllers down
        return Enforcement("rss-poll", None, f"memory is not delegated below {root}")
    if not os.access(base, os.W_OK):
        return Enforcement("rss-poll", None, f"{base} is not writable (the host is not root)")
    # made when the first limited replica starts (a host with no --memory leaves no trace)
    return Enforcement(kind, base / f"shipyard-{host_id[:12]}")


def remove_parent(enforcement: Enforcement) -> None:
    """The host is closing: its parent cgroup goes (its replicas' are gone already)."""
    if enforcement.parent is None or not enforcement.parent.exists():
        return
    for child in enforcement.parent.glob("replica-*"):
        _rmdir(child)
    _rmdir(enforcement.parent)


class Guard:
    """The limit on one replica: its cgroup, or the poller that watches its RSS."""

    def __init__(self, enforcement: Enforcement, name: str, limit: int) -> None:
        self.enforcement = enforcement
        self.limit = limit
        self.cgroup = enforcement.parent / name if enforcement.parent is not None else None
        self._oom = False
        self._poller: asyncio.Task[None] | None = None

    def attach(self, pid: int) -> None:
        """Put the just-started worker ``pid`` under the limit. A cgroup that cannot be made
        falls back to polling (said in a WARNING)."""
        if self.cgroup is not None:
            try:
                self._make_cgroup(pid)
                return
            except OSError as exc:
                log.warning(
                    "could not limit worker %s by %s (%s); polling its RSS instead",
                    pid,
                    self.cgroup,
                    exc,
                )
                _rmdir(self.cgroup)
                self.cgroup = None
        self._poller = asyncio.create_task(self._poll(pid))

    def _make_cgroup(self, pid: int) -> None:
        assert self.cgroup is not None
        parent = self.cgroup.parent
        if not parent.exists():
            parent.mkdir(exist_ok=True)
            if self.enforcement.kind == "cgroup-v2":  # children may limit memory only then
                (parent / "cgroup.subtree_control").write_text("+memory")
        self.cgroup.mkdir(exist_ok=True)
        if self.enforcement.kind == "cgroup-v2":
            (self.cgroup / "memory.max").write_text(str(self.limit))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to close
                (self.cgroup / "memory.swap.max").write_text("0")
        else:
            (self.cgroup / "memory.limit_in_bytes").write_text(str(self.limit))
            memsw = self.cgroup / "memory.memsw.limit_in_bytes"
            if memsw.exists():  # memory + swap: swapping out is no way past the limit
                memsw.write_text(str(self.limit))
        (self.cgroup / "cgroup.procs").write_text(str(pid))

    def oom_killed(self) -> bool:
        """Whether the worker was killed for going over its limit (by the kernel or by us)."""
        if not self._oom and self.cgroup is not None:
            self._oom = _cgroup_oom_kills(self.cgroup, self.enforcement.kind) > 0
        return self._oom

    def release(self) -> None:
        """The worker has exited: stop polling, remove its cgroup (after reading whether the
        kernel killed it)."""
        self.oom_killed()
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self.cgroup is not None:
            _rmdir(self.cgroup)

    async def _poll(self, pid: int) -> None:
        while True:
            rss = group_rss(pid)
            if rss is None:
                return  # the worker is gone
            if rss > self.limit:
                self._oom = True
                log.warning(
                    "worker %s uses %s, over its limit of %s: killing it",
                    pid,
                    format_size(rss),
                    format_size(self.limit),
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                return
            await asyncio.sleep(POLL_INTERVAL)


def group_rss(pgid: int) -> int | None:
    """The resident memory (bytes) of every process in process group ``pgid`` (a worker and
    what it forked), or None when its leader is gone."""
    if not Path(f"/proc/{pgid}").exists():
        return None
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            # after the command (in parentheses, may hold spaces): state ppid pgrp ...
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid:
                continue
            total += int(Path(entry.path, "statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _cgroup_oom_kills(cgroup: Path, kind: str) -> int:
    name = "memory.events" if kind == "cgroup-v2" else "memory.oom_control"
    try:
        text = (cgroup / name).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def _rmdir(path: Path) -> None:
    # the last task of a cgroup leaves it a moment after its exit is reaped: retry briefly
    deadline = time.monotonic() + 1.0
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                log.warning("could not remove %s: %s", path, exc)
                return
            time.sleep(0.01)
