"""A worker started with ``--host-pid`` dies with its host: by the kernel's parent-death
signal (even with no connection yet, even stuck in load()), at once if the host was already
gone when it looked, and when the host's connection closes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipyard.serve.parent import ORPHANED
from shipyard.serve.testing import FrameConnection
from support.waiting import wait_for

SERVICE = """
import threading
from pathlib import Path

from shipyard.serve import Service, endpoint


class Quick(Service):
    @endpoint
    def echo(self, x: int) -> int:
        return x


class Stuck(Service):
    def load(self):
        Path(__file__).with_name("loading").touch()
        threading.Event().wait()  # a load() that never ends

    @endpoint
    def echo(self, x: int) -> int:
        return x
"""

#: a stand-in host: starts one worker as its child, says its pid, then only waits
HOST = """
import signal, subprocess, sys
worker = subprocess.Popen(sys.argv[1:] + ["--host-pid", str(__import__("os").getpid())])
print(worker.pid, flush=True)
signal.pause()
"""


def _argv(tmp_path: Path, cls: str) -> list[str]:
    (tmp_path / "service.py").write_text(textwrap.dedent(SERVICE))
    return [
        sys.executable,
        "-m",
        "shipyard.serve.worker",
        "--socket",
        str(tmp_path / "w.sock"),
        "--code-dir",
        str(tmp_path),
        "--entry",
        f"service.py:{cls}",
        "--name",
        "svc",
    ]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return True
    return state[state.rfind(b")") + 2 : state.rfind(b")") + 3] in (b"Z", b"X")


@pytest.mark.parametrize("cls", ["Quick", "Stuck"])
def test_the_kernel_kills_the_worker_with_its_host(tmp_path: Path, cls: str) -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", HOST, *_argv(tmp_path, cls)], stdout=subprocess.PIPE
    )
    try:
        assert host.stdout is not None
        worker = int(host.stdout.readline())
        if cls == "Quick":  # serving, with no connection from the host
            wait_for(lambda: (tmp_path / "w.sock").exists(), "the worker's socket")
        else:  # in load(), well past the parent-death setup
            wait_for(lambda: (tmp_path / "loading").exists(), "the worker in load()")
        assert not _gone(worker)
        host.send_signal(signal.SIGKILL)
        host.wait(10)
        wait_for(lambda: _gone(worker), "the worker gone with its host")
    finally:
        host.kill()
        host.wait()
        if host.stdout is not None:
            host.stdout.close()


def test_a_worker_whose_host_is_already_gone_exits_at_once(tmp_path: Path) -> None:
    # pid 1 is never this worker's parent: as if the host died before the worker looked
    done = subprocess.run(
        [*_argv(tmp_path, "Quick"), "--host-pid", "1"], capture_output=True, timeout=60
    )
    assert done.returncode == ORPHANED
    assert not (tmp_path / "w.sock").exists()


def test_the_worker_stops_when_the_hosts_connection_closes(tmp_path: Path) -> None:
    worker = subprocess.Popen(
        [*_argv(tmp_path, "Quick"), "--host-pid", str(os.getpid())], stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: (tmp_path / "w.sock").exists(), "the worker's socket")
        connection = FrameConnection(tmp_path / "w.sock")
        assert connection.request("echo", {"x": 7}) == (200, 7)
        connection.sock.close()
        assert worker.wait(30) == 0
        assert worker.stderr is not None
        events = [json.loads(line) for line in worker.stderr.read().splitlines() if line]
        assert "host_gone" in [e.get("event") for e in events]
    finally:
        worker.kill()
        worker.wait()
        if worker.stderr is not None:
            worker.stderr.close()
