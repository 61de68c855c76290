"""Real hosts killed and restarted, for the fault tests: a host in a subprocess, the worker
processes of a home read from ``/proc``, and a gate that holds services in ``load()``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from support.waiting import wait_for

#: services whose load() waits at the gate (``GATE_PORT``): the test decides when they load.
#: ``Stubborn`` clears its parent-death signal first, as a load() that changes its user id
#: would: nothing but the next host of its home can stop it then.
SERVICES = """
import ctypes
import os
import socket

from shipyard.serve import Service, endpoint


def wait_at_gate():
    with socket.create_connection(("127.0.0.1", int(os.environ["GATE_PORT"])), 120) as gate:
        gate.recv(1)


class Fast(Service):
    @endpoint
    def echo(self, x: int) -> int:
        return x


class Slow(Service):
    def load(self):
        wait_at_gate()

    @endpoint
    def echo(self, x: int) -> int:
        return x


class Stubborn(Service):
    def load(self):
        ctypes.CDLL(None, use_errno=True).prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG: none
        wait_at_gate()

    @endpoint
    def echo(self, x: int) -> int:
        return x
"""


def deadline_poll(condition: Any, what: str, timeout: float = 30.0) -> Any:
    """:func:`support.waiting.wait_for` with the longer deadline process deaths need."""
    return wait_for(condition, what, timeout)


def start_time(pid: int) -> int | None:
    """``/proc/PID/stat``'s start time (field 22), None for no live process; read here, not
    with the host's own reader, so that the tests observe what the code under test does."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def workers_of_home(home: Path) -> dict[int, int]:
    """The live worker processes whose code is under ``home``: pid -> start time."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"shipyard.serve.worker" in argv and any(a.startswith(os.fsencode(home)) for a in argv):
            started = start_time(int(entry.name))
            if started is not None:
                found[int(entry.name)] = started
    return found


def alive(pid: int, started: int) -> bool:
    """Whether ``pid`` is still the process that started at ``started``."""
    return start_time(pid) == started


class Gate:
    """A loopback port whose connections get one byte once :meth:`open` is called."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.opened = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with self._lock:
            self.waiting += 1
        self.opened.wait(120)
        with conn, self._lock:
            self.waiting -= 1
            try:
                conn.sendall(b"x")
            except OSError:
                pass  # the worker was killed while it waited

    def open(self) -> None:
        self.opened.set()

    def close_gate(self) -> None:
        self.opened.clear()

    def shut(self) -> None:
        self.opened.set()
        self.server.close()


class Host:
    """``shipyard serve`` on ``home`` in a subprocess; kill -9 it, start it again."""

    def __init__(self, home: Path, gate: Gate) -> None:
        self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "SHIPYARD_HOME": str(home)}
        self.gate = gate
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = home / "host.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the host; do not wait for it."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shipyard", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self.proc

    def start(self, max_polls: int = 3000) -> int:
        """Start the host and poll ``/healthz`` until it answers; return the polls it took
        (at most ``max_polls``, 20 ms apart)."""
        proc = self.launch()
        for polls in range(1, max_polls + 1):
            if proc.poll() is not None:
                raise AssertionError(f"the host exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return polls
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"/healthz did not answer: {self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def deploy(self, code: Path, cls: str, name: str, replicas: int) -> subprocess.Popen[str]:
        """``shipyard deploy`` in the background (it returns when the replicas are ready)."""
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shipyard",
                "deploy",
                f"{code}:{cls}",
                "--name",
                name,
                "--replicas",
                str(replicas),
                "--env",
                f"GATE_PORT={self.gate.port}",
                "--url",
                self.url,
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def readyz(self) -> httpx.Response:
        return httpx.get(self.url + "/readyz", timeout=10)


def deployed(process: subprocess.Popen[str]) -> None:
    """Wait for a background ``shipyard deploy`` and fail with its output if it failed."""
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output


def write_services(directory: Path) -> Path:
    """The services file, in a directory of its own; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "services.py"
    path.write_text(SERVICES)
    return path
