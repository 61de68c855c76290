"""A real host (``shipyard serve``) in a subprocess on a free loopback port, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HostProcess:
    def __init__(
        self, home: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.args = args
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SHIPYARD_HOME": str(home), **(env or {})}
        self.log = home / "host.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> HostProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shipyard", "serve", "--port", str(self.port), *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the host exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the host did not start: {self.log.read_text()[-3000:]}")

    def wait_ready(self, timeout: float = 120) -> None:
        """Poll ``/readyz`` until every deployment is back: a restarted host restores them in
        the background, answering ``/healthz`` meanwhile."""
        deadline = time.monotonic() + timeout
        while httpx.get(self.url + "/readyz", timeout=10).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the host was not ready: {self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    @property
    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def cli(
        self, *args: str, check: bool = True, remote: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``shipyard ARGS`` against this host (``--url`` added unless ``remote=False``)."""
        url = ["--url", self.url] if remote else []
        out = subprocess.run(
            [sys.executable, "-m", "shipyard", *args, *url],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"shipyard {' '.join(args)} failed: {out.stdout}{out.stderr}")
        return out

    def deploy(
        self, target: Path | str, name: str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        return self.cli("deploy", str(target), "--name", name, *extra)

    def post(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=kw.pop("timeout", 30), **kw)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def worker_pids(self, service: str) -> list[int]:
        data = httpx.get(
            f"{self.url}/api/v1/deployments/{service}", headers=self.admin, timeout=10
        ).json()
        return [r["pid"] for r in data["live"] if r["ready"]]
