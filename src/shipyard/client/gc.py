"""Garbage collection: delete old runs, then the blobs nothing points at any more.

>>> report = collect(older_than=timedelta(days=30), keep_last=None, dry_run=True)  # doctest: +SKIP
>>> report.runs, report.blobs, report.bytes                                         # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

from shipyard.store.blobs import BlobStore
from shipyard.store.context import default_stores
from shipyard.store.records import now


@dataclass
class GcReport:
    """What :func:`collect` deleted (or, with ``dry_run``, would delete)."""

    dry_run: bool
    runs: list[str] = field(default_factory=list)  # pathspecs
    blobs: int = 0
    #: bytes of the deleted blobs; None if the blob store cannot tell sizes cheaply
    bytes: int | None = 0
    #: unreferenced blobs younger than the grace period (a live run may be about to use them)
    young_blobs: int = 0
    log_dirs: int = 0
    #: temp files of interrupted blob writes (a task killed mid-write), and their bytes
    temp_files: int = 0
    temp_bytes: int = 0


def _blob_size(blobs: BlobStore, key: str) -> int | None:
    """The blob's stored size, for the file:// layout ``dir/<key[:2]>/<key>``; else None."""
    size = getattr(blobs, "size", None)
    if callable(size):
        value = size(key)
        return int(value) if value is not None else None
    url = urlparse(blobs.url)
    if url.scheme != "file":
        return None
    try:
        return (Path(unquote(url.path)) / key[:2] / key).stat().st_size
    except OSError:
        return 0


def collect(
    older_than: timedelta | None,
    keep_last: int | None,
    dry_run: bool,
    grace: timedelta = timedelta(hours=1),
) -> GcReport:
    """Delete finished (or dead) runs created more than ``older_than`` ago and/or beyond the
    newest ``keep_last`` per flow (both given: only runs both rules let go), then every blob no
    row references that is older than ``grace``, and the deleted runs' leftover log dirs;
    and the temp files of interrupted blob writes: those whose writer is gone (judged on the
    machine that wrote them) or that were not written to for ``grace``.

    ``dry_run`` changes nothing; its blob counts include only blobs unreferenced *now*, not
    those the listed runs alone still hold.
    """
    if older_than is None and keep_last is None:
        raise ValueError("gc needs older_than and/or keep_last; neither was given")
    if keep_last is not None and keep_last < 0:
        raise ValueError(f"keep_last must be >= 0, got {keep_last}")
    ctx = default_stores()
    cutoff = now() - older_than if older_than is not None else None
    doomed = ctx.meta.runs_for_gc(older_than=cutoff, keep_last=keep_last)
    report = GcReport(dry_run=dry_run, runs=[r.pathspec for r in doomed])
    logs = ctx.home / "logs"
    for run in doomed:
        path = logs / run.flow_name / str(run.run_id)
        if path.is_dir():
            report.log_dirs += 1
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
    if doomed and not dry_run:
        ctx.meta.delete_runs([r.run_id for r in doomed])
    referenced = ctx.meta.referenced_blob_keys()  # read AFTER listing would race new writes
    oldest_allowed = time.time() - grace.total_seconds()
    for key, mtime in list(ctx.blobs.list()):
        if key in referenced:
            continue
        if mtime > oldest_allowed:
            report.young_blobs += 1
            continue
        size = _blob_size(ctx.blobs, key)
        report.bytes = None if size is None or report.bytes is None else report.bytes + size
        report.blobs += 1
        if not dry_run:
            ctx.blobs.delete(key)
    remove_temp_files = getattr(ctx.blobs, "remove_temp_files", None)  # file:// stores only
    if remove_temp_files is not None:
        report.temp_files, report.temp_bytes = remove_temp_files(
            grace.total_seconds(), dry_run=dry_run
        )
    return report


__all__ = ["GcReport", "collect"]
