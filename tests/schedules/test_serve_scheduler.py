"""The scheduler inside ``shipyard serve``: on by default, one per database (a second host
on the same SQLite database stands by and says so), off with ``--no-scheduler``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

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


FLOW = """
from shipyard import FlowSpec, current, step


class HostedFlow(FlowSpec):
    @step
    def start(self):
        import os

        self.kind = current.trigger.type
        self.leaked = "CHAT_API_KEY" in os.environ
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def run_on_the_host(home: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A schedule triggered by hand runs, started by the host's scheduler."""
    from shipyard.client import Run
    from shipyard.config import settings
    from shipyard.schedules.manage import create, trigger_now
    from shipyard.schedules.store import ScheduleStore
    from shipyard.store.blobs import open_blob_store
    from shipyard.store.meta import MetaStore

    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.setenv("SHIPYARD_DB_URL", f"sqlite:///{db}")
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    flow = home.parent / "hosted_flow.py"
    flow.write_text(FLOW)
    now = datetime.now(UTC)
    with MetaStore.open() as meta:
        store = ScheduleStore(meta)
        blobs = open_blob_store(settings().store_url)
        create(store, flow, name=None, user="t", now=now, blobs=blobs, cron="0 0 1 1 *")
        fire_id = trigger_now(store, "HostedFlow", {}, user="t", now=now)
        deadline = time.monotonic() + 60
        while store.fire(fire_id).exit_code is None:
            assert time.monotonic() < deadline, store.fire(fire_id)
            time.sleep(0.1)
        fire = store.fire(fire_id)
    assert fire.exit_code == 0
    data = Run(f"HostedFlow/{fire.run_id}")["start"].task.data
    assert data.kind == "manual"
    assert data.leaked is False  # the host's provider key stayed with the host


def test_one_scheduler_per_database_the_second_host_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "meta.db"
    procs = []
    try:
        monkeypatch.setenv("CHAT_API_KEY", "sk-secret")  # the hosts' environment
        first, first_log = serve(tmp_path / "a", db, "--max-scheduled-runs", "3")
        monkeypatch.delenv("CHAT_API_KEY")
        procs.append(first)
        wait_for_line(first_log, "ticks schedules (at most 3 scheduled runs at once)", first)
        run_on_the_host(tmp_path / "a", db, monkeypatch)
        monkeypatch.setenv("SHIPYARD_MAX_SCHEDULED_RUNS", "5")  # the second host's setting
        second, second_log = serve(tmp_path / "b", db)
        monkeypatch.delenv("SHIPYARD_MAX_SCHEDULED_RUNS")
        procs.append(second)
        said = wait_for_line(second_log, STANDBY, second)
        assert "holds the lease" not in said
        third, third_log = serve(tmp_path / "c", db, "--no-scheduler")
        procs.append(third)
        wait_for_line(third_log, "service calls are open", third)  # started
        assert "shipyard.scheduler" not in third_log.read_text()  # no scheduler said a word
        first.send_signal(signal.SIGTERM)  # it lets its lease go: the second one takes over
        first.wait(30)
        wait_for_line(second_log, "ticks schedules (at most 5 scheduled runs at once)", second)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def test_runs_started_by_the_host_never_see_its_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.serve.scheduling import run_env

    monkeypatch.setenv("CHAT_API_KEY", "sk-secret")  # a gateway provider's key, in the host
    monkeypatch.setenv("SHIPYARD_RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = run_env("file:///tmp/blobs")
    assert "CHAT_API_KEY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["PATH"] == os.environ["PATH"]
    assert env["SHIPYARD_RAY_ADDRESS"] == "10.0.0.5:6379"
    assert "OMP_NUM_THREADS" not in env  # a flow's tasks are not one-thread workers
    assert run_env("s3://bucket/blobs")["AWS_SECRET_ACCESS_KEY"] == "aws-secret"
