"""Redis fixtures (a plugin: ``pytest_plugins`` in tests/conftest.py) and helpers for the
cache tests (``from support.redis_servers import RedisServer, silent_port, ...``).

``redis_urls``: the two shared redis-servers scripts/services.sh starts, each URL with a fresh
``prefix`` so tests never see each other's keys (deleted afterwards). ``redis_server``: a
factory of private redis-servers on free ports, for tests that kill or stop them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from support.servers import missing_server, server_url

#: how long a private redis-server may take to answer (scripts/services.sh allows as long:
#: the first start after an install, on a loaded machine, can be slow); a server that exits
#: ends the wait at once
START_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        batch = list(client.scan_iter(match=f"{prefix}:*", count=5000))
        for start in range(0, len(batch), 1000):
            client.unlink(*batch[start : start + 1000])
    finally:
        client.close()


@pytest.fixture(name="redis_urls")
def redis_urls_fixture() -> Iterator[list[str]]:
    """The shared servers' URLs, each with the same fresh ``?prefix=``."""
    urls = server_url("SHIPYARD_TEST_REDIS_URLS").split(",")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield [f"{url}?prefix={prefix}" for url in urls]
    for url in urls:
        _delete_prefix(url, prefix)


@pytest.fixture(name="redis_url")
def redis_url_fixture(redis_urls: list[str]) -> str:
    """The first shared server, under a fresh prefix."""
    return redis_urls[0]


class RedisServer:
    """A private redis-server process (no persistence) on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart, on the same port) and wait until it answers PING."""
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + START_SECONDS
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError as exc:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.stop()
                        message = (
                            f"redis-server on port {self.port} did not answer PING within "
                            f"{START_SECONDS} s"
                        )
                        raise RuntimeError(message) from exc
                    time.sleep(0.05)
        finally:
            client.close()

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the server (SIGKILL, SIGSTOP, SIGCONT)."""
        assert self.process is not None
        os.kill(self.process.pid, signum)
        if signum == signal.SIGKILL:
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Kill the server for good (resuming it first if it was stopped)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(name="redis_server")
def redis_server_fixture(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """A factory ``redis_server()`` of private servers, all killed after the test."""
    server_url("SHIPYARD_TEST_REDIS_URLS")  # same skip / CI failure as the shared servers
    if shutil.which("redis-server") is None:
        missing_server("Redis", "redis-server is not on PATH")
    started: list[RedisServer] = []

    def start() -> RedisServer:
        directory = tmp_path / f"redis-{len(started)}"
        directory.mkdir()
        server = RedisServer(directory)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def silent_port() -> tuple[socket.socket, str]:
    """A listening socket that accepts connections but never answers: a hung server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


def closed_port_url() -> str:
    """A URL where nothing listens (connection refused)."""
    return closed_port_urls(1)[0]


def closed_port_urls(count: int) -> list[str]:
    """``count`` different URLs where nothing listens: the ports are held until all are
    chosen, so two calls in a row cannot hand out the same one."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [f"redis://127.0.0.1:{s.getsockname()[1]}/0" for s in held]
    finally:
        for sock in held:
            sock.close()
