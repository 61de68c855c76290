"""gc: old runs go, then blobs nothing references and older than the grace period."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shipyard.client import NotFound, Run, Task
from shipyard.client.gc import collect


def _age_blobs(home: Path, seconds: float = 7200) -> None:
    old = time.time() - seconds
    for folder in (home / "blobs").iterdir():
        for blob in folder.iterdir():
            os.utime(blob, (old, old))


def _keys(fake: Any) -> set[str]:
    return {key for key, _ in fake.blobs.list()}


def _all_loads(run: Run) -> None:
    for task in run.tasks():
        for artifact in task.artifacts.values():
            artifact.data  # noqa: B018
        task.stdout  # noqa: B018


def test_gc_needs_a_limit(fake: Any) -> None:
    with pytest.raises(ValueError, match="older_than and/or keep_last"):
        collect(older_than=None, keep_last=None, dry_run=True)


def test_dry_run_changes_nothing(fake: Any, home: Path) -> None:
    old = fake.demo_run(grid=(1, 2))
    fake.demo_run(grid=(3, 4))
    orphan = fake.put_bytes(b"nobody points at me")
    _age_blobs(home)
    (home / "logs" / "DemoFlow" / str(old.run_id)).mkdir(parents=True)
    before = _keys(fake)
    report = collect(older_than=None, keep_last=1, dry_run=True)
    assert report.dry_run
    assert report.runs == [f"DemoFlow/{old.run_id}"]
    # the orphan, and the blobs only the old run holds (its logs, artifacts of its own)
    assert report.blobs > 1 and report.bytes is not None
    assert report.bytes > len(b"nobody points at me")
    assert report.log_dirs == 1
    assert _keys(fake) == before and orphan in before
    _all_loads(Run(f"DemoFlow/{old.run_id}"))
    assert (home / "logs" / "DemoFlow" / str(old.run_id)).is_dir()
    # the estimate is what the real thing frees
    done = collect(older_than=None, keep_last=1, dry_run=False)
    assert (done.runs, done.blobs, done.bytes) == (report.runs, report.blobs, report.bytes)
    assert len(_keys(fake)) == len(before) - report.blobs


def test_collect_deletes_old_runs_and_unreferenced_old_blobs(fake: Any, home: Path) -> None:
    old = fake.demo_run(grid=(1, 2))
    kept = fake.demo_run(grid=(3, 4))
    live = fake.run()
    fake.task(live, "start", status=None, stdout="still running\n")
    old_only = {a.sha for t in Run(f"DemoFlow/{old.run_id}").tasks() for a in t}
    shared = fake.artifact("alpha", 0.5).key  # both runs' start task has alpha = 0.5
    log_dir = home / "logs" / "DemoFlow" / str(old.run_id)
    log_dir.mkdir(parents=True)
    _age_blobs(home)
    young = fake.put_bytes(b"written by a run in progress a moment ago")

    # keep_last counts the live run among the newest two
    report = collect(older_than=timedelta(0), keep_last=2, dry_run=False)

    assert report.runs == [f"DemoFlow/{old.run_id}"]  # never the live run, nor the newest
    with pytest.raises(NotFound):
        Run(f"DemoFlow/{old.run_id}")
    with pytest.raises(NotFound):
        Task(f"DemoFlow/{old.run_id}/end/{old.end}")
    remaining = _keys(fake)
    assert young in remaining and report.young_blobs == 1
    assert shared in remaining
    gone = old_only - {shared} - {a.sha for t in Run(f"DemoFlow/{kept.run_id}").tasks() for a in t}
    assert gone and not gone & remaining
    assert report.blobs >= len(gone) and report.bytes and report.bytes > 0
    assert not log_dir.exists() and report.log_dirs == 1
    _all_loads(Run(f"DemoFlow/{kept.run_id}"))
    assert Run(f"DemoFlow/{live}").tasks()[0].stdout == "still running\n"

    again = collect(older_than=timedelta(0), keep_last=2, dry_run=False)
    assert again.runs == [] and again.blobs == 0
