"""Garbage collection: delete old runs, then the blobs nothing points at any more.

Runs a limit selects are kept when they matter beyond their age: tagged runs, runs that
registered model versions (the lineage of a model, and of what a deployment serves). Naming
a run (``runs=["Flow/12"]``) deletes it all the same.

>>> report = collect(older_than=timedelta(days=30), keep_last=None, dry_run=True)  # doctest: +SKIP
>>> report.runs, report.blobs, report.bytes                                         # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

from shipyard.client.errors import NotFound
from shipyard.store import pathspec as _pathspec
from shipyard.store.blobs import BlobStore
from shipyard.store.context import Stores, default_stores
from shipyard.store.files import file_keys
from shipyard.store.records import RunRecord, RunStatus, now


@dataclass
class GcReport:
    """What :func:`collect` deleted (or, with ``dry_run``, would delete)."""

    dry_run: bool
    runs: list[str] = field(default_factory=list)  # pathspecs
    #: pathspec -> why a run the limits selected was kept (tags, registered models)
    kept: dict[str, list[str]] = field(default_factory=dict)
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


def _named_runs(ctx: Stores, names: Sequence[str]) -> list[RunRecord]:
    """The runs named ``Flow/run_id``; NotFound for one that does not exist, ValueError for
    one that is still running."""
    found = []
    for name in names:
        spec = _pathspec.parse(name, min_depth=2, max_depth=2)
        assert spec.run_id is not None
        record = ctx.meta.get_run(spec.flow, spec.run_id)
        if record is None:
            raise NotFound(name, f"run {name} does not exist")
        if record.status is RunStatus.RUNNING:
            raise ValueError(f"run {name} is running: gc never deletes a live run")
        found.append(record)
    return found


def collect(
    older_than: timedelta | None,
    keep_last: int | None,
    dry_run: bool,
    grace: timedelta = timedelta(hours=1),
    runs: Sequence[str] = (),
) -> GcReport:
    """Delete finished (or dead) runs created more than ``older_than`` ago and/or beyond the
    newest ``keep_last`` per flow (both given: only runs both rules let go) but tagged runs
    and runs that registered model versions (listed in ``kept``, with why), and the runs
    named in ``runs`` (``Flow/run_id``) whatever they are; then every blob no row
    references that is older than ``grace``, and the deleted runs' leftover log dirs; and
    the temp files of interrupted blob writes: those whose writer is gone (judged on the
    machine that wrote them) or that were not written to for ``grace``.

    ``dry_run`` changes nothing; it counts the blobs that would go: those unreferenced now
    and those only the listed runs reference (older than ``grace``).
    """
    if older_than is None and keep_last is None and not runs:
        raise ValueError("gc needs older_than and/or keep_last, or runs; none was given")
    if keep_last is not None and keep_last < 0:
        raise ValueError(f"keep_last must be >= 0, got {keep_last}")
    ctx = default_stores()
    named = _named_runs(ctx, runs)
    cutoff = now() - older_than if older_than is not None else None
    selected = ctx.meta.runs_for_gc(older_than=cutoff, keep_last=keep_last)
    named_ids = {r.run_id for r in named}
    reasons = ctx.meta.runs_gc_keeps([r.run_id for r in selected if r.run_id not in named_ids])
    doomed = [r for r in selected if r.run_id not in reasons and r.run_id not in named_ids]
    doomed = named + doomed
    report = GcReport(
        dry_run=dry_run,
        runs=[r.pathspec for r in doomed],
        kept={r.pathspec: reasons[r.run_id] for r in selected if r.run_id in reasons},
    )
    logs = ctx.home / "logs"
    for run in doomed:
        path = logs / run.flow_name / str(run.run_id)
        if path.is_dir():
            report.log_dirs += 1
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
    if doomed and not dry_run:
        ctx.meta.delete_runs([r.run_id for r in doomed])
    # read AFTER listing would race new writes; a dry run counts what the runs alone hold
    excluding = [r.run_id for r in doomed] if dry_run else []
    referenced = ctx.meta.referenced_blob_keys(excluding=excluding)
    # a file artifact's files are blobs of their own, listed in its manifest
    referenced |= file_keys(ctx.blobs, ctx.meta.files_manifest_keys(excluding=excluding))
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
