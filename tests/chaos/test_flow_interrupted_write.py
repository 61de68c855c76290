"""Fault: a task killed (SIGKILL) in the middle of writing a large artifact leaves the
write's temp file in the blob store; ``shipyard gc`` removes it, since its writer is gone,
and says how many and how many bytes. A temp file whose writer still runs is kept until it
has not been written to for the grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shipyard.client import Run
from shipyard.store.records import TaskStatus
from shipyard.testing import write_flow
from support.waiting import wait_for

FLOW = """
import os
from shipyard import FlowSpec, step

class BigWriteFlow(FlowSpec):
    @step
    def start(self):
        open(os.environ["PIDFILE"], "w").write(str(os.getpid()))
        self.big = os.urandom(300 * 1024 * 1024)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _shipyard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _temp_files(blobs: Path) -> list[Path]:
    return [p for p in blobs.glob("*/.tmp-*") if p.is_file()]


def test_gc_removes_the_temp_file_of_a_task_killed_mid_write(
    shipyard_home: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "task.pid"
    flow = write_flow(FLOW, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "run", str(flow), "--max-workers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PIDFILE": str(pidfile)},
    )
    blobs = shipyard_home / "blobs"
    try:
        wait_for(
            lambda: any(p.stat().st_size > 1 << 20 for p in _temp_files(blobs)),
            "a large artifact to be half-written",
            60,
        )
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert Run("BigWriteFlow/1")["start"].task.status is TaskStatus.FAILED
    [left] = _temp_files(blobs)  # what the killed write left
    left_bytes = left.stat().st_size

    dry = _shipyard("gc", "--keep", "10", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 1 temp file(s) of interrupted writes" in dry.stdout, dry.stdout
    assert left.exists()

    done = _shipyard("gc", "--keep", "10")  # no run goes; the grace period is the default hour
    assert done.returncode == 0, done.stderr
    assert "deleted 1 temp file(s) of interrupted writes" in done.stdout, done.stdout
    assert _temp_files(blobs) == []
    assert left_bytes > 1 << 20
    assert Run("BigWriteFlow/1").status.value == "failed"  # gc took no run


def test_a_live_writers_temp_file_stays_until_it_is_stale(shipyard_home: Path) -> None:
    from shipyard.store import open_blob_store

    root = shipyard_home / "blobs"
    store = open_blob_store(f"file://{root}")
    folder = root / "ab"
    folder.mkdir(parents=True)
    # named as the store names them: .tmp-<host>-<writer pid>-<random>; this process: alive
    ours = folder / f".tmp-{os.uname().nodename}-{os.getpid()}-0123456789abcdef"
    ours.write_bytes(b"x" * 100)
    elsewhere = folder / ".tmp-another-host-1-0123456789abcdef"  # a writer we cannot judge
    elsewhere.write_bytes(b"y" * 10)
    assert store.remove_temp_files(3600) == (0, 0)
    assert ours.exists() and elsewhere.exists()

    an_hour_ago = time.time() - 3601
    os.utime(elsewhere, (an_hour_ago, an_hour_ago))
    assert store.remove_temp_files(3600, dry_run=True) == (1, 10)
    assert store.remove_temp_files(3600) == (1, 10)
    assert not elsewhere.exists() and ours.exists()
