"""The host's record in its home: the lock, the atomic 0600 record, and which processes a
claiming host takes for its predecessor's leftovers (a reused pid never)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.serve.hostfile import HostBusy, claim, start_time, stop_leftovers


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that only waits: the stand-in for a leftover worker."""
    process = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    yield process
    process.kill()
    process.wait()


def test_the_start_time_names_one_process() -> None:
    mine = start_time(os.getpid())
    assert mine is not None and mine > 0
    assert start_time(os.getpid()) == mine
    assert start_time(2**22 + 1) is None  # above pid_max: no such process


def test_the_record_is_written_whole_and_private(tmp_path: Path) -> None:
    record, stopped = claim(tmp_path, "a" * 32)
    try:
        assert stopped == []
        path = tmp_path / "serve" / "host.json"
        assert path.stat().st_mode & 0o777 == 0o600
        record.add_worker(os.getpid())
        written = json.loads(path.read_text())
        assert written["id"] == "a" * 32
        assert written["pid"] == os.getpid()
        assert written["start_time"] == start_time(os.getpid())
        assert written["workers"] == [{"pid": os.getpid(), "start_time": written["start_time"]}]
        assert sorted(p.name for p in path.parent.iterdir()) == ["host.json", "host.lock"]
    finally:
        record.release()
    assert not path.exists()


def test_one_host_per_home(tmp_path: Path) -> None:
    record, _ = claim(tmp_path / "one", "a" * 32)
    try:
        with pytest.raises(HostBusy, match=f"another shipyard host is running on {tmp_path}"):
            claim(tmp_path / "one", "b" * 32)
        other, _ = claim(tmp_path / "two", "b" * 32)  # another home: no conflict
        other.release()
    finally:
        record.release()
    again, _ = claim(tmp_path / "one", "c" * 32)  # released: free again
    again.release()


def test_leftovers_are_matched_by_pid_and_start_time(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    started = start_time(sleeper.pid)
    assert started is not None
    # the same pid with another start time is a reused pid: never stopped
    previous = {"id": "d" * 32, "pid": 1, "workers": [{"pid": sleeper.pid, "start_time": 1}]}
    assert stop_leftovers(previous) == []
    assert sleeper.poll() is None
    previous["workers"] = [{"pid": sleeper.pid, "start_time": started}]
    assert stop_leftovers(previous) == [sleeper.pid]
    assert sleeper.wait(10) == -9


def test_a_claim_stops_the_dead_predecessors_workers(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    serve = tmp_path / "serve"
    serve.mkdir()
    dead = {
        "id": "e" * 32,
        "pid": 2**22 + 1,  # no such process: the previous host is gone
        "start_time": 5,
        "workers": [{"pid": sleeper.pid, "start_time": start_time(sleeper.pid)}],
    }
    (serve / "host.json").write_text(json.dumps(dead))
    record, stopped = claim(tmp_path, "f" * 32)
    record.release()
    assert stopped == [sleeper.pid]
    assert sleeper.wait(10) == -9
