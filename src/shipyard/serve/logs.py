"""A service's logs: what its worker processes wrote, read back, merged and made readable.

Each replica the host starts writes its stdout and stderr to one file,
``$SHIPYARD_HOME/serve/logs/<service>/v<version>-<n>.log`` (``n`` is the replica's number
on its host). The worker's own lines are JSON events with a ``ts`` (``ready``,
``endpoint_error`` with its ``error_id`` and ``traceback``, ``load_failed``...); the rest
is whatever user code printed, without a time.

:func:`read_logs` merges the files of a service in time order. A line without a timestamp
keeps its place after the previous stamped line of its file (lines before a file's first
stamp go with that first stamp). :func:`render` turns a line into text for people: time,
replica, version, then the event and its message, a traceback indented under it. The CLI
(``shipyard service logs``), the admin API (``GET /api/v1/services/{name}/logs``) and the
UI's deployment page all read through here::

    page = read_logs(home, "ranker", tail=100)
    for line in page.lines:
        print(render(line))
    later = read_logs(home, "ranker", after=page.cursor)   # what was written since

A :class:`Cursor` is where each file was read up to; files that appear later (a replica
restarted, a new version) are read from their start.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.names import service_name_problem
from shipyard.serve.errors import ServeError

#: the largest ``tail`` a reader may ask for
MAX_TAIL = 10_000
#: bytes one follow-up read takes from each file at most
CHUNK_BYTES = 1 << 20
#: bytes from the end of a file a tail read starts with (more if the lines need it)
TAIL_WINDOW = 64 << 10
_FILE = re.compile(r"v(\d+)-(\d+)\.log")
#: fields of an event shown by name in its line (the rest follow as ``key=value``)
_SHOWN = ("ts", "event", "service", "endpoint", "error", "error_id", "traceback")


class LogsError(ServeError):
    """Logs that cannot be read as asked (no such service here, a malformed cursor)."""


def logs_dir(home: Path, service: str) -> Path:
    """Where the replicas of ``service`` write their logs. Raises :class:`LogsError` for a
    name that is no service name (it would lead elsewhere: ``..``)."""
    problem = service_name_problem(service)
    if problem:
        raise LogsError(problem)
    return home / "serve" / "logs" / service


@dataclass(frozen=True)
class LogLine:
    """One line of one replica's log.

    ``at`` orders the line: its own ``ts``, or the previous stamped line's in its file.
    ``event`` is the parsed JSON event (None for a plain line, e.g. a ``print``)."""

    at: float
    stamped: bool
    version: int
    replica: int
    text: str
    event: dict[str, Any] | None

    @property
    def error_id(self) -> str | None:
        """The error id the line carries, if any."""
        value = self.event.get("error_id") if self.event else None
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        """The admin API's form of the line."""
        return {
            "at": self.at,
            "stamped": self.stamped,
            "version": self.version,
            "replica": self.replica,
            "text": self.text,
            "event": self.event,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogLine:
        """The line back from :meth:`to_json` (the CLI reads a remote host's answer)."""
        event = data.get("event")
        return cls(
            at=float(data["at"]),
            stamped=bool(data.get("stamped")),
            version=int(data["version"]),
            replica=int(data["replica"]),
            text=str(data["text"]),
            event=event if isinstance(event, dict) else None,
        )


@dataclass(frozen=True)
class Cursor:
    """Where each log file of a service was read up to: ``(file name, byte offset, the last
    stamp read in it)``, so that a later read places its first unstamped lines after it.

    Its text form (:meth:`__str__`, :meth:`parse`) travels in a URL:
    ``v1-1.log:120:1764921600.5,v1-2.log:0``.
    """

    offsets: tuple[tuple[str, int, float | None], ...] = ()

    def __str__(self) -> str:
        return ",".join(
            f"{name}:{offset}" + (f":{stamp!r}" if stamp is not None else "")
            for name, offset, stamp in self.offsets
        )

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """Raises :class:`LogsError` for text that is no cursor."""
        offsets = []
        for part in filter(None, text.split(",")):
            name, _, rest = part.partition(":")
            offset, _, stamp = rest.partition(":")
            try:
                last = float(stamp) if stamp else None
            except ValueError:
                last = None
            if not _FILE.fullmatch(name) or not offset.isdigit() or (stamp and last is None):
                raise LogsError(
                    f"bad logs cursor {part!r}: expected FILE:OFFSET[:STAMP] parts such as "
                    "v1-1.log:120"
                )
            offsets.append((name, int(offset), last))
        return cls(tuple(offsets))

    def get(self, name: str) -> tuple[int, float | None]:
        """Where ``name`` was read up to, and its last stamp (a file not seen: ``0, None``)."""
        for file, offset, stamp in self.offsets:
            if file == name:
                return offset, stamp
        return 0, None


@dataclass(frozen=True)
class LogsPage:
    """What :func:`read_logs` found: ``lines`` in time order, the ``cursor`` to read on
    from, and the ``directory`` looked in with the number of ``files`` read."""

    lines: list[LogLine]
    cursor: Cursor
    directory: Path
    files: int


def _files(directory: Path, version: int | None) -> list[tuple[str, int, int]]:
    """``(name, version, replica)`` of each log file, oldest replica first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _FILE.fullmatch(name)
        if match and (version is None or int(match[1]) == version):
            found.append((name, int(match[1]), int(match[2])))
    return sorted(found, key=lambda f: (f[2], f[1]))


def _parse(raw: str) -> tuple[float | None, dict[str, Any] | None]:
    if not raw.startswith("{"):
        return None, None
    try:
        event = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(event, dict) or "event" not in event:
        return None, None
    ts = event.get("ts")
    return (float(ts) if isinstance(ts, int | float) else None), event


def _lines(
    path: Path,
    version: int,
    replica: int,
    start: int,
    last: float | None,
    limit: int | None,
    *,
    needle: bytes | None = None,
    whole: bool = True,
) -> tuple[list[LogLine], int, float | None]:
    """The whole lines of ``path`` from byte ``start`` (at most ``limit`` bytes, None: all),
    the offset after the last whole line read and the last stamp seen (``last``: the one
    before ``start``). ``needle``: only lines holding these bytes; ``whole=False``: ``start``
    may be inside a line, which is skipped."""
    try:
        with path.open("rb") as file:
            file.seek(start)
            data = file.read() if limit is None else file.read(limit)
            mtime = os.fstat(file.fileno()).st_mtime
    except FileNotFoundError:
        return [], start, last
    end = data.rfind(b"\n") + 1  # a line still being written is read next time
    if end == 0 and limit is not None and len(data) == limit:
        end = len(data)  # one line longer than a chunk: take it in pieces
    begin = 0 if whole or start == 0 else data.find(b"\n") + 1
    data = data[begin:end] if begin <= end else b""
    pending: list[tuple[str, dict[str, Any] | None]] = []  # before the first stamp
    lines: list[LogLine] = []
    for raw_bytes in data.splitlines():
        if needle is not None and needle not in raw_bytes:
            continue
        raw = raw_bytes.decode("utf-8", "replace").rstrip("\r")
        ts, event = _parse(raw)
        if ts is not None:
            if pending:  # the unstamped lines before the first stamp go with it
                lines += [LogLine(ts, False, version, replica, t, e) for t, e in pending]
                pending = []
            last = ts
            lines.append(LogLine(ts, True, version, replica, raw, event))
        elif last is None:
            pending.append((raw, event))
        else:
            lines.append(LogLine(last, False, version, replica, raw, event))
    # a file without any stamp: its lines go at the time it was last written
    lines += [LogLine(mtime, False, version, replica, t, e) for t, e in pending]
    return lines, start + end, last


def _last_lines(
    path: Path, version: int, replica: int, count: int
) -> tuple[list[LogLine], int, float | None]:
    """The last ``count`` lines of ``path``, reading only as much of its end as they need
    (a long-running replica's log may be large), with :func:`_lines`' other answers."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [], 0, None
    window = max(TAIL_WINDOW, count * 512)
    while True:
        start = max(0, size - window)
        lines, end, stamp = _lines(path, version, replica, start, None, None, whole=False)
        if start == 0 or len(lines) > count:
            return lines[-count:] if count else [], end, stamp
        window *= 4


def read_logs(
    home: Path,
    service: str,
    *,
    version: int | None = None,
    since: float | None = None,
    tail: int | None = None,
    error_id: str | None = None,
    after: Cursor | None = None,
) -> LogsPage:
    """The log lines of ``service`` under ``home``, all replicas merged in time order.

    ``version``: only that version's replicas; ``since``: only lines at or after that Unix
    time; ``tail``: only the last that many (after the other filters); ``error_id``: only the
    lines carrying that error id (the failure and its traceback); ``after``: only what was
    written after that cursor (:attr:`LogsPage.cursor` of an earlier read).
    """
    directory = logs_dir(home, service)
    files = _files(directory, version)
    per_file: list[list[LogLine]] = []
    offsets = []
    for name, file_version, replica in files:
        path = directory / name
        if after is not None:
            start, stamp = after.get(name)
            lines, end, stamp = _lines(path, file_version, replica, start, stamp, CHUNK_BYTES)
        elif tail is not None and since is None and error_id is None:
            lines, end, stamp = _last_lines(path, file_version, replica, tail)
        else:
            needle = json.dumps(error_id).encode() if error_id is not None else None
            lines, end, stamp = _lines(path, file_version, replica, 0, None, None, needle=needle)
        offsets.append((name, end, stamp))
        if since is not None:
            lines = [line for line in lines if line.at >= since]
        if error_id is not None:
            lines = [line for line in lines if line.error_id == error_id]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        per_file.append(lines)
    merged: Iterator[LogLine] = heapq.merge(*per_file, key=lambda line: line.at)
    if tail is not None:
        kept = list(deque(merged, maxlen=max(0, tail)))
    else:
        kept = list(merged)
    return LogsPage(kept, Cursor(tuple(offsets)), directory, len(files))


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def render(line: LogLine) -> str:
    """``line`` for people: ``TIME  vV rN  EVENT  message``, a traceback indented below.

    >>> render(LogLine(0.0, False, 1, 2, "hello", None))
    '                         v1 r2  | hello'
    """
    where = f"v{line.version} r{line.replica}"
    if line.event is None:
        when = _when(line.at) if line.stamped else " " * 23
        return f"{when}  {where}  | {line.text}"
    event = line.event
    parts = [str(event.get("event"))]
    if event.get("endpoint"):
        parts.append(str(event["endpoint"]))
    message = " ".join(parts)
    if event.get("error"):
        message += f": {event['error']}"
    if event.get("error_id"):
        message += f"  [error_id {event['error_id']}]"
    extra = " ".join(f"{k}={v}" for k, v in event.items() if k not in _SHOWN)
    if extra:
        message += f"  {extra}"
    when = _when(line.at) if line.stamped else " " * 23
    text = f"{when}  {where}  {message}"
    trace = event.get("traceback")
    if isinstance(trace, str) and trace.strip():
        text += "\n" + "\n".join("    " + row for row in trace.rstrip("\n").splitlines())
    return text


__all__ = [
    "CHUNK_BYTES",
    "MAX_TAIL",
    "TAIL_WINDOW",
    "Cursor",
    "LogLine",
    "LogsError",
    "LogsPage",
    "logs_dir",
    "read_logs",
    "render",
]
