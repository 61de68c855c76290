"""Overload and the development loop, each on a host of its own."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
from hosts import HostProcess

SLOW = """
import time
from shipyard.serve import Service, endpoint


class Slow(Service):
    @endpoint
    def wait(self, ms: int) -> int:
        time.sleep(ms / 1000)
        return ms
"""


def test_an_overloaded_service_answers_503_with_retry_after_quickly(tmp_path: Path) -> None:
    host = HostProcess(tmp_path / "home", args=("--max-in-flight", "1")).start()
    try:
        path = tmp_path / "slow_service.py"
        path.write_text(SLOW)
        host.deploy(f"{path}:Slow", "slow")

        def call() -> tuple[int, float, str | None]:
            started = time.monotonic()
            r = httpx.post(host.url + "/slow/wait", json={"ms": 2000}, timeout=30)
            return r.status_code, time.monotonic() - started, r.headers.get("retry-after")

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: call(), range(8)))
        ok = [r for r in results if r[0] == 200]
        refused = [r for r in results if r[0] == 503]
        assert ok and refused and len(ok) + len(refused) == 8, results
        # refused at once, not after waiting for the 2 s call in flight
        assert all(retry == "1" and seconds < 1.0 for _, seconds, retry in refused), refused
        metrics = httpx.get(host.url + "/metrics").text
        assert 'shipyard_rejected_total{reason="overloaded",service="slow"}' in metrics
    finally:
        host.stop()


DEV = """
from shipyard.serve import Service, endpoint


class Dev(Service):
    @endpoint
    def hello(self) -> str:
        return "GREETING"
"""


def test_serve_a_file_redeploys_it_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "dev_service.py"
    path.write_text(DEV.replace("GREETING", "hello v1"))
    host = HostProcess(tmp_path / "home", args=(f"{path}:Dev", "--name", "dev"))
    host.start()
    try:
        deadline = time.monotonic() + 60

        def answer() -> object:
            r = httpx.post(host.url + "/dev/hello", json={}, timeout=10)
            return r.json() if r.status_code == 200 else None

        while answer() != "hello v1":
            assert time.monotonic() < deadline, host.log.read_text()[-2000:]
            time.sleep(0.1)
        path.write_text(DEV.replace("GREETING", "hello v2"))
        while answer() != "hello v2":
            assert time.monotonic() < deadline, host.log.read_text()[-2000:]
            time.sleep(0.1)
    finally:
        host.stop()
