"""Fault: the blob store refuses writes mid-run (its disk fills up, or its directory turns
read-only). The task that could not write fails naming the path and the OS error, the run
fails cleanly (exit 1, no traceback, the hint to resume), and a resume once the store accepts
writes again finishes the run, reusing what had succeeded.

The refusal is real: as root (whom permission bits do not stop) the blob store is a 1 MB
tmpfs filled to the last page (unmounted after); otherwise its directories are made
read-only (0500).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.client import Run
from shipyard.store.records import RunStatus, TaskStatus
from shipyard.testing import write_flow
from support.waiting import wait_for

FLOW = """
import os, time
from shipyard import FlowSpec, step

class FullFlow(FlowSpec):
    @step
    def start(self):
        self.first = os.urandom(20_000)
        self.next(self.work)

    @step
    def work(self):
        open(os.environ["READY"], "w").close()
        gate = os.environ["GATE"]
        deadline = time.monotonic() + 60
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        print("writing the second artifact")
        self.second = os.urandom(100_000)
        self.next(self.end)

    @step
    def end(self):
        self.total = len(self.first) + len(self.second)
"""


def _overrides_permissions() -> bool:
    """True if this process ignores permission bits (CAP_DAC_OVERRIDE, as root has)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 1))
    return os.geteuid() == 0


class Refusal:
    """Makes the blob directory refuse writes (``refuse``) and accept them again
    (``accept``), for real."""

    def __init__(self, blobs: Path) -> None:
        self.blobs = blobs
        self.mounted = False
        self.filler = blobs / "filler"

    def setup(self) -> None:
        self.blobs.mkdir(parents=True, mode=0o700)
        if _overrides_permissions():  # root: mount needs CAP_SYS_ADMIN, as root has by default
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(self.blobs)],
                check=True,
            )
            self.mounted = True

    def refuse(self) -> str:
        """Returns the OS error the store's writers should now meet."""
        if self.mounted:
            with self.filler.open("wb", buffering=0) as f:
                for size in (1 << 16, 1 << 12, 1):
                    try:
                        while True:
                            f.write(b"\0" * size)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC, exc
            return os.strerror(errno.ENOSPC)
        for folder in [self.blobs, *(p for p in self.blobs.rglob("*") if p.is_dir())]:
            folder.chmod(0o500)
        return os.strerror(errno.EACCES)

    def accept(self) -> None:
        if self.mounted:
            self.filler.unlink()
        else:
            for folder in [self.blobs, *(p for p in self.blobs.rglob("*") if p.is_dir())]:
                folder.chmod(0o700)

    def teardown(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.blobs)], check=True)
        else:
            self.accept()


@pytest.fixture
def refusal(shipyard_home: Path) -> Iterator[Refusal]:
    refusal = Refusal(shipyard_home / "blobs")
    refusal.setup()
    try:
        yield refusal
    finally:
        refusal.teardown()


def test_a_store_that_refuses_writes_fails_the_task_and_the_run_cleanly(
    refusal: Refusal, tmp_path: Path
) -> None:
    ready, gate = tmp_path / "ready", tmp_path / "gate"
    flow = write_flow(FLOW, tmp_path)
    env = {**os.environ, "READY": str(ready), "GATE": str(gate)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "run", str(flow)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        wait_for(lambda: ready.exists() or proc.poll() is not None, "the second step", 60)
        assert proc.returncode is None, proc.communicate()
        oserror = refusal.refuse()
        gate.touch()
    finally:
        if proc.returncode is None and not gate.exists():
            proc.kill()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in out + err, (out, err)
    assert "shipyard resume FullFlow/1" in out + err, (out, err)
    run = Run("FullFlow/1")
    assert run.status is RunStatus.FAILED
    assert run["start"].task.status is TaskStatus.SUCCEEDED
    work = run["work"].task
    assert work.status is TaskStatus.FAILED
    message = work.exception["message"]
    assert str(refusal.blobs) in message and oserror in message, message

    refusal.accept()
    resumed = subprocess.run(
        [sys.executable, "-m", "shipyard", "resume", "FullFlow/1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "GATE": str(tmp_path)},  # open: the step goes straight on
    )
    assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
    again = Run("FullFlow/2")
    assert again.successful
    assert again["end"].task.data.total == 120_000
    assert "reused from the origin run" in resumed.stdout + resumed.stderr


def test_a_store_that_refuses_writes_from_the_start_stops_the_run_before_it_exists(
    refusal: Refusal, tmp_path: Path
) -> None:
    oserror = refusal.refuse()
    proc = subprocess.run(
        [sys.executable, "-m", "shipyard", "run", str(write_flow(FLOW, tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert "the blob store refused the run's code snapshot" in proc.stderr, proc.stderr
    assert str(refusal.blobs) in proc.stderr and oserror in proc.stderr, proc.stderr
