"""What runs on a Ray node beside a task attempt, so that its end is known even when its
worker dies: a node-local directory per attempt, its log streamed to the run's blob store,
a record of its start (pid, memory cgroup) and of ``os._exit``, and the post-mortem task
that reads them after the worker died.

**Logs.** The attempt writes its stdout and stderr (stamped lines, :mod:`shipyard.store.
loglines`) to files in ``<tmp>/shipyard-ray/attempts/<flow>.<run>.<task>.<attempt>/`` on
its node. A thread of the Ray task (:class:`LogStreamer`) uploads what was added to them
every :data:`STREAM_SECONDS` as the next numbered chunk of a live log in the run's blob
store (keys from :func:`live_key`: a node whose disk the runtime cannot read still
streams, and what was uploaded survives the node). The runtime appends the chunks to the
attempt's live log file on its own machine, which ``shipyard logs``, the UI and the run's
console read as they read a local task's; when the attempt ends its whole log is stored as
a local attempt's is (one blob per stream) and the chunks are deleted.

**Post-mortem.** When the worker died (``WorkerCrashedError``) the runtime runs
:func:`post_mortem` on every live node; the one the attempt ran on answers with the rest
of the log, the exit status the step gave ``os._exit`` and its memory cgroup's OOM-kill
count since the start, then removes the directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.store.blobs import BlobStore
from shipyard.store.records import live_log

if TYPE_CHECKING:
    from shipyard.flow.task import TaskSpec

#: where a node keeps the snapshots it extracted and its attempts' directories
NODE_HOME = Path(tempfile.gettempdir()) / "shipyard-ray"
#: how often a running attempt uploads what its log gained
STREAM_SECONDS = 1.0
SUFFIXES = ("out", "err")
_NO_LIMIT = 1 << 60


def attempt_dir(spec: TaskSpec) -> Path:
    """The attempt's node-local directory (runs of two stores may share a cluster: the
    store's URL is part of the name)."""
    store = hashlib.sha256(spec.store_url.encode()).hexdigest()[:12]
    name = f"{spec.flow_name}.{spec.run_id}.{spec.task_id}.{spec.attempt}.{store}"
    return NODE_HOME / "attempts" / name


def node_spec(spec: TaskSpec, here: Path) -> TaskSpec:
    """``spec`` with its live logs in the attempt's node-local directory ``here``."""
    return dataclasses.replace(spec, log_dir=str(here / "log"))


def live_key(spec: TaskSpec, suffix: str, number: int) -> str:
    """The blob key of chunk ``number`` of the attempt's live ``suffix`` log."""
    name = f"shipyard-live-log:{spec.flow_name}/{spec.run_id}/{spec.task_id}/{spec.attempt}"
    return hashlib.sha256(f"{name}/{suffix}/{number}".encode()).hexdigest()


class LogStreamer:
    """Uploads what the attempt's node-local log files gained, every ``interval`` seconds,
    as numbered chunks (a thread of the Ray task; :meth:`stop` ends it)."""

    def __init__(
        self, store: BlobStore, spec: TaskSpec, local: TaskSpec, interval: float = STREAM_SECONDS
    ) -> None:
        self.store, self.spec, self.interval = store, spec, interval
        self.paths = {suffix: local.path(suffix) for suffix in SUFFIXES}
        self.offsets = dict.fromkeys(SUFFIXES, 0)
        self.chunks = dict.fromkeys(SUFFIXES, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shipyard-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001, S110 - the store's hiccup: try again next time
                pass

    def flush(self) -> None:
        for suffix, path in self.paths.items():
            try:
                with path.open("rb") as handle:
                    handle.seek(self.offsets[suffix])
                    data = handle.read()
            except FileNotFoundError:
                continue
            if data:
                self.store.put(live_key(self.spec, suffix, self.chunks[suffix]), [data])
                self.offsets[suffix] += len(data)
                self.chunks[suffix] += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= _NO_LIMIT else value


def _events(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def memory_cgroup() -> dict[str, Any]:
    """This process's memory cgroup (v1 or v2): ``cgroup`` (its path), ``limit`` and
    ``peak`` in bytes (None if unknown or unlimited) and ``oom_kills`` so far."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return {"cgroup": "", "limit": None, "peak": None, "oom_kills": 0}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # v1
            for base in (Path("/sys/fs/cgroup/memory") / path.lstrip("/"),):
                if base.is_dir():
                    return {
                        "cgroup": path,
                        "limit": _read_int(base / "memory.limit_in_bytes"),
                        "peak": _read_int(base / "memory.max_usage_in_bytes"),
                        "oom_kills": _events(base / "memory.oom_control", "oom_kill"),
                    }
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2
            for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                base = root / path.lstrip("/")
                if (base / "memory.events").is_file():
                    return {
                        "cgroup": path,
                        "limit": _read_int(base / "memory.max"),
                        "peak": _read_int(base / "memory.peak"),
                        "oom_kills": _events(base / "memory.events", "oom_kill"),
                    }
    return {"cgroup": "", "limit": None, "peak": None, "oom_kills": 0}


def begin(spec: TaskSpec, node_id: str) -> tuple[Path, TaskSpec]:
    """Make the attempt's node-local directory and record its start there; returns it and
    the spec whose live logs are in it."""
    here = attempt_dir(spec)
    end(here)  # what a lost node's earlier attempt of the same ids may have left
    here.mkdir(parents=True, exist_ok=True)
    start = {"pid": os.getpid(), "node": node_id, "memory": memory_cgroup()}
    (here / "start.json").write_text(json.dumps(start))
    return here, node_spec(spec, here)


def end(here: Path) -> None:
    """The attempt reported: its directory is no longer needed."""
    for path in here.iterdir() if here.is_dir() else ():
        path.unlink(missing_ok=True)
    try:
        here.rmdir()
    except OSError:
        pass


@contextmanager
def recording_exit(here: Path) -> Iterator[None]:
    """While the step runs, ``os._exit(n)`` first writes ``n`` to the attempt's directory
    (and flushes the step's output), so the post-mortem can say how the worker ended."""
    real: Callable[[int], Any] = os._exit

    def _exit(status: int) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - exiting anyway
                pass
        try:
            (here / "exit.json").write_text(json.dumps({"code": status}))
        finally:
            real(status)

    os._exit = _exit  # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit = real  # type: ignore[assignment]


def post_mortem(spec: TaskSpec, node_id: str) -> dict[str, Any] | None:
    """Run on a node after the attempt's worker died: None unless the attempt ran on this
    node (``node_id``); else what its directory holds (then removed) and the memory
    cgroup's numbers now."""
    here = attempt_dir(spec)
    try:
        start = json.loads((here / "start.json").read_text())
    except (OSError, ValueError):
        return None
    if start.get("node") != node_id:  # a node sharing this /tmp (one machine): not ours
        return None
    logs = {}
    for suffix in SUFFIXES:
        try:
            logs[suffix] = live_log(str(here / "log"), spec.attempt, suffix).read_bytes()
        except OSError:
            logs[suffix] = b""
    try:
        exit_code: int | None = json.loads((here / "exit.json").read_text())["code"]
    except (OSError, ValueError, KeyError):
        exit_code = None
    found = {"start": start, "logs": logs, "exit_code": exit_code, "memory": memory_cgroup()}
    end(here)
    return found


def versions() -> dict[str, str]:
    """Python (major.minor), Ray and shipyard versions of this process."""
    import ray
    import shipyard

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {"python": python, "ray": ray.__version__, "shipyard": shipyard.__version__}


__all__ = [
    "NODE_HOME",
    "STREAM_SECONDS",
    "SUFFIXES",
    "LogStreamer",
    "attempt_dir",
    "begin",
    "end",
    "live_key",
    "memory_cgroup",
    "node_spec",
    "post_mortem",
    "recording_exit",
    "versions",
]
