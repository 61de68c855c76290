"""The tail of a task attempt's stdout/stderr: the stored blob once the attempt ended, the
live file the runtime writes while it runs (same rules as ``Task.logs`` in the client)."""

from __future__ import annotations

from pathlib import Path

from shipyard.store.blobs import BlobNotFound, BlobStore
from shipyard.store.records import AttemptRecord, TaskRecord

#: bytes of a log the task page shows (the end of it)
TAIL_BYTES = 64 << 10


def _tail_file(path: Path, limit: int) -> tuple[str, bool]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            end = handle.tell()
            handle.seek(max(0, end - limit))
            return handle.read(limit).decode("utf-8", "replace"), end > limit
    except OSError:
        return "", False


def tail(
    blobs: BlobStore,
    home: Path,
    task: TaskRecord,
    attempt: AttemptRecord,
    stream: str,
    limit: int = TAIL_BYTES,
) -> tuple[str, bool]:
    """``(text, cut)``: the last ``limit`` bytes of the attempt's ``stream`` and whether
    anything before them was left out. ``("", False)`` when there is no log."""
    key = attempt.stdout_key if stream == "stdout" else attempt.stderr_key
    if key:
        try:
            data = bytes(blobs.get(key))
        except (BlobNotFound, ValueError):
            return "", False
        return data[-limit:].decode("utf-8", "replace"), len(data) > limit
    return _tail_file(task.live_log(home, attempt.attempt, stream), limit)


def live_size(home: Path, task: TaskRecord, attempt: AttemptRecord) -> int:
    """Bytes written so far to a running attempt's live stdout + stderr files."""
    total = 0
    for stream in ("stdout", "stderr"):
        try:
            total += task.live_log(home, attempt.attempt, stream).stat().st_size
        except OSError:
            pass
    return total


__all__ = ["TAIL_BYTES", "live_size", "tail"]
