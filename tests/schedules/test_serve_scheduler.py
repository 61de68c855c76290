"""The scheduler inside ``shipyard serve``: on by default, one per database (a second host
on the same SQLite database stands by and says so), off with ``--no-scheduler``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STANDBY = "runs this database's schedules; this one stands by (one scheduler per database)"


def serve(home: Path, db: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    home.mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = home / "host.log"
    env = {**os.environ, "SHIPYARD_HOME": str(home), "SHIPYARD_DB_URL": f"sqlite:///{db}"}
    env.pop("SHIPYARD_STORE_URL", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "serve", "--port", str(port), *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


def wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        assert proc.poll() is None, content
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {log.read_text()}")


def test_one_scheduler_per_database_the_second_host_says_so(tmp_path: Path) -> None:
    db = tmp_path / "meta.db"
    procs = []
    try:
        first, first_log = serve(tmp_path / "a", db)
        procs.append(first)
        wait_for_line(first_log, "holds the lease, ticks schedules", first)
        second, second_log = serve(tmp_path / "b", db)
        procs.append(second)
        said = wait_for_line(second_log, STANDBY, second)
        assert "holds the lease" not in said
        third, third_log = serve(tmp_path / "c", db, "--no-scheduler")
        procs.append(third)
        wait_for_line(third_log, "service calls are open", third)  # started
        assert "shipyard.scheduler" not in third_log.read_text()  # no scheduler said a word
        first.send_signal(signal.SIGTERM)  # it lets its lease go: the second one takes over
        first.wait(30)
        wait_for_line(second_log, "holds the lease, ticks schedules", second)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
