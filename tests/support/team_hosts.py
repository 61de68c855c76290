"""For tests/serve/test_team_hosts.py: several hosts sharing one PostgreSQL and one S3 bucket,
behind Debian's nginx (scripts/services.sh exports ``SHIPYARD_TEST_NGINX``), and the small
service they serve."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

#: a service that says which host's worker answered (the worker's SHIPYARD_HOME is its host's
#: home) and which version it is; ``ms`` keeps each call in flight a while
SERVICE = """
import os
import time

from shipyard.serve import Service, endpoint


class Team(Service):
    def load(self):
        self.home = os.path.basename(os.environ["SHIPYARD_HOME"])
        if self.home == FAIL_ON:
            raise RuntimeError(f"this version does not load on host {self.home}")

    @endpoint
    def who(self, ms: int = 0) -> dict:
        time.sleep(ms / 1000)
        return {"home": self.home, "version": VERSION, "pid": os.getpid()}
"""


def write_service(directory: Path, version: int, fail_on: str | None = None) -> Path:
    """The service file of ``version``, in a directory of its own; returns its path. Its
    ``load()`` fails on the host whose home is named ``fail_on``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "team.py"
    path.write_text(f"VERSION = {version}\nFAIL_ON = {fail_on!r}\n" + SERVICE)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nginx_config(directory: Path, port: int, upstreams: list[int]) -> str:
    """The configuration docs/team.md shows, on loopback ports, with everything nginx writes
    kept under ``directory``.

    ``proxy_next_upstream error timeout``: a request that could not be sent to a host (its
    connection refused: the host is dead) goes to the next one; one already sent is not sent
    again (a POST is not idempotent), so only the requests in flight on a host that dies fail.
    ``max_fails=1``: one such failure takes the host out for ``fail_timeout``.
    """
    servers = "\n".join(
        f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;" for p in upstreams
    )
    temp = {name: directory / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # nginx's workers run as nobody when it is started as root
    return f"""
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log {directory}/access.log;
  client_body_temp_path {temp["client_body"]};
  proxy_temp_path {temp["proxy"]};
  fastcgi_temp_path {temp["fastcgi"]};
  uwsgi_temp_path {temp["uwsgi"]};
  scgi_temp_path {temp["scgi"]};
  upstream shipyard {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://shipyard;
      proxy_set_header Host $host;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 2;
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
    }}
  }}
}}
"""


class Nginx:
    """nginx (the binary at ``binary``) in front of the loopback ports ``upstreams``."""

    def __init__(self, binary: str, directory: Path, upstreams: list[int]) -> None:
        self.binary = binary
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = directory / "nginx.conf"
        self.conf.write_text(nginx_config(directory, self.port, upstreams))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Nginx:
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.directory), "-e", str(self.directory / "error.log"),
             "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.errors()}")
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not answer on {self.url}: {self.errors()}")

    def errors(self) -> str:
        path = self.directory / "error.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the workers go with the master
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
