"""A task attempt's stdout/stderr: the stored blob once the attempt ended, the live file the
runtime writes while it runs (same rules as ``Task.logs`` in the client).

:func:`tail` is what the task page shows; :func:`follow` reads on from a byte offset, what
the page's script polls while the attempt runs. Offsets count bytes of the log, so they are
the same in the live file and in the blob that replaces it when the attempt ends. The
stamps that start the lines (:mod:`shipyard.store.loglines`) are counted in the offsets and
removed from the text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shipyard.store import loglines
from shipyard.store.blobs import BlobNotFound, BlobStore
from shipyard.store.records import AttemptRecord, TaskRecord, TaskStatus
from shipyard.ui.context import UIError

#: bytes of a log the task page shows (the end of it)
TAIL_BYTES = 64 << 10
#: the most bytes one :func:`follow` answer reads
CHUNK_BYTES = 64 << 10
#: the streams a task has
STREAMS = ("stdout", "stderr")


class LogOffsetError(UIError, ValueError):
    """An offset past the end of the log (:func:`follow`); ``.size`` is the log's size."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


@dataclass(frozen=True)
class Tail:
    """The end of a log: ``text``, whether anything before it was ``cut``, and ``end``, the
    byte offset just past ``text`` (where :func:`follow` reads on)."""

    text: str
    cut: bool
    end: int


@dataclass(frozen=True)
class Chunk:
    """What :func:`follow` read: ``text``, ``offset`` (just past it: the next read starts
    there), ``more`` (bytes already written after it) and ``done`` (the attempt ended and
    nothing is left: stop polling). ``missing``: the live file was not there (not created
    yet, or just replaced by the blob: read the attempt again)."""

    text: str
    offset: int
    more: bool
    done: bool
    missing: bool = False


def _key(attempt: AttemptRecord, stream: str) -> str | None:
    return attempt.stdout_key if stream == "stdout" else attempt.stderr_key


def _complete(data: bytes) -> int:
    """How many leading bytes of ``data`` are whole UTF-8 characters: a read may stop in the
    middle of one, which the next read then starts with."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: the character starts further back
            continue
        needed = 1 if byte < 0xC0 or byte >= 0xF8 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return len(data) - back if back < needed else len(data)
    return len(data)


def _read(
    blobs: BlobStore, path: Path, key: str | None, start: int, limit: int
) -> tuple[bytes, int] | None:
    """``(up to limit bytes from start, the log's size)``; None when there is no log (no
    blob and no live file). The size of a blob is known only up to ``start + limit + 1``,
    enough to tell whether more follows."""
    if key:
        try:
            data = blobs.get_range(key, start, limit + 1)
            if not data and start > 0 and not blobs.get_range(key, start - 1, 1):
                return b"", _blob_size(blobs, key)
        except (BlobNotFound, ValueError):
            return None
        return data[:limit], start + len(data)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if start >= size:
                return b"", size
            handle.seek(start)
            return handle.read(limit), size
    except OSError:
        return None


def _blob_size(blobs: BlobStore, key: str) -> int:
    return len(blobs.get(key))


def tail(
    blobs: BlobStore,
    home: Path,
    task: TaskRecord,
    attempt: AttemptRecord,
    stream: str,
    limit: int = TAIL_BYTES,
) -> Tail:
    """The last ``limit`` bytes of the attempt's ``stream``; empty when there is no log."""
    key = _key(attempt, stream)
    if key:
        try:
            data = bytes(blobs.get(key))
        except (BlobNotFound, ValueError):
            return Tail("", False, 0)
        size = len(data)
    else:
        try:
            with task.live_log(home, attempt.attempt, stream).open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(0, size - limit))
                data = handle.read(limit)
                size = max(0, size - limit) + len(data)
        except OSError:
            return Tail("", False, 0)
    data = data[-limit:]
    if attempt.status is TaskStatus.RUNNING:  # the writer may be in the middle of a character
        kept = _complete(data)
        size -= len(data) - kept
        data = data[:kept]
    return Tail(loglines.strip(data.decode("utf-8", "replace"), chunk=True), size > len(data), size)


def follow(
    blobs: BlobStore,
    home: Path,
    task: TaskRecord,
    attempt: AttemptRecord,
    stream: str,
    offset: int,
    limit: int = CHUNK_BYTES,
) -> Chunk:
    """Up to ``limit`` bytes of the attempt's ``stream`` from byte ``offset``: from the live
    file while the attempt runs, from the blob once it ended. Raises :class:`LogOffsetError`
    when ``offset`` is past the end of the log."""
    running = attempt.status is TaskStatus.RUNNING
    where = f"the {stream} of task {task.pathspec} attempt {attempt.attempt}"
    path = task.live_log(home, attempt.attempt, stream)
    read = _read(blobs, path, _key(attempt, stream), offset, limit)
    if read is None:  # no log (yet, or any more: the caller reads the attempt again)
        if offset > 0 and not running:
            raise LogOffsetError(f"offset {offset} is past the end of {where}: it is empty", 0)
        return Chunk("", offset, more=False, done=not running, missing=running)
    data, size = read
    if offset > size:
        raise LogOffsetError(
            f"offset {offset} is past the end of {where} ({size} bytes so far); "
            f"read from 0, or from {size} to follow what is written next",
            size,
        )
    end = offset + len(data)
    more = end < size
    if running or more:  # keep a character cut by the limit or by the writer whole
        data = data[: _complete(data)]
        end = offset + len(data)
    line_start = data.rfind(b"\n") + 1
    if data[line_start:].startswith(b"\x1e") and b"\x1f" not in data[line_start:] and line_start:
        data = data[:line_start]  # a stamp cut in two: the next read starts with it whole
        end = offset + len(data)
    text = loglines.strip(data.decode("utf-8", "replace"), chunk=True)
    return Chunk(text, end, more=more, done=not running and end >= size)


__all__ = [
    "CHUNK_BYTES",
    "STREAMS",
    "TAIL_BYTES",
    "Chunk",
    "LogOffsetError",
    "Tail",
    "follow",
    "tail",
]
