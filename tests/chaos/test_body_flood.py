"""A flood of large request bodies against a real host (``shipyard serve`` in a subprocess):
40 concurrent 15 MB POSTs must not take the host's memory with them. The host admits a call
before it reads its body, holds at most ``--max-body-buffer`` (256 MB) of bodies, and streams
them to the worker: its resident memory stays under 300 MB, is back under 150 MB within 10 s,
and every caller gets an answer (200, or 503 with ``Retry-After``).

The host's RSS is read from ``/proc/PID/status`` every 50 ms while the flood runs.
"""

from __future__ import annotations

import concurrent.futures
import re
import socket
import threading
import time
from pathlib import Path

import httpx

from serve.hosts import HostProcess

CALLERS = 40
BODY_MB = 15
PEAK_LIMIT = 300 << 20
SETTLED_LIMIT = 150 << 20
SETTLE_POLLS = 100  # 100 polls, 0.1 s apart: 10 s

SINK = """
from shipyard.serve import Service, endpoint


class Sink(Service):
    @endpoint
    def size(self, data: str) -> int:
        return len(data)
"""


def _rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None, status
    return int(found.group(1)) << 10


class _Sampler:
    """The highest RSS of ``pid`` seen every 50 ms until :meth:`stop`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _rss(self.pid))
            self.samples += 1
            self._done.wait(0.05)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)


def _post(port: int, path: str, body: bytes) -> tuple[int, str | None]:
    """One POST over a raw socket: (status, Retry-After), or (0, why) when the connection
    ended without a response."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        try:
            s.sendall(head)
            s.sendall(body)
        except OSError:
            pass  # refused early and closed: the response may still be there to read
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except OSError as exc:
            if not answer:
                return 0, f"no response: {exc}"
    if not answer:
        return 0, "no response: closed"
    status = int(answer.split(b" ", 2)[1])
    found = re.search(rb"\r\nretry-after: (\d+)\r\n", answer, re.IGNORECASE)
    return status, found.group(1).decode() if found else None


def test_a_flood_of_large_bodies_keeps_the_host_small(tmp_path: Path) -> None:
    path = tmp_path / "sink_service.py"
    path.write_text(SINK)
    host = HostProcess(tmp_path / "home", args=(f"{path}:Sink", "--name", "sink")).start()
    try:
        assert host.proc is not None
        deadline = time.monotonic() + 60
        while httpx.post(host.url + "/sink/size", json={"data": "ab"}, timeout=10).json() != 2:
            assert time.monotonic() < deadline, host.log.read_text()[-2000:]
            time.sleep(0.1)
        text = "x" * (BODY_MB << 20)
        body = b'{"data": "' + text.encode() + b'"}'
        before = _rss(host.proc.pid)
        sampler = _Sampler(host.proc.pid)
        try:
            with concurrent.futures.ThreadPoolExecutor(CALLERS) as pool:
                answers = list(
                    pool.map(lambda _: _post(host.port, "/sink/size", body), range(CALLERS))
                )
        finally:
            sampler.stop()
        statuses = [status for status, _ in answers]
        assert all(status in (200, 503) for status in statuses), answers
        assert all(retry == "1" for status, retry in answers if status == 503), answers
        assert statuses.count(200) >= 1, answers
        assert sampler.samples >= 5
        assert sampler.peak <= PEAK_LIMIT, (
            f"host RSS peaked at {sampler.peak >> 20} MB (from {before >> 20} MB); "
            f"answers: {sorted(statuses)}"
        )
        print("FIGURES", before >> 20, sampler.peak >> 20, statuses.count(200), statuses.count(503))
        settled = 0
        for _ in range(SETTLE_POLLS):
            settled = _rss(host.proc.pid)
            if settled < SETTLED_LIMIT:
                break
            time.sleep(0.1)
        print("SETTLED", settled >> 20)
        assert settled < SETTLED_LIMIT, f"host RSS still {settled >> 20} MB after 10 s"
        # the host still serves, and holds no body any more
        assert httpx.post(host.url + "/sink/size", json={"data": "abc"}, timeout=10).json() == 3
        metrics = httpx.get(host.url + "/metrics", timeout=10).text
        assert re.search(r"^shipyard_body_bytes_held 0\.0$", metrics, re.MULTILINE), metrics
        refused = statuses.count(503)
        if refused:
            counted = re.findall(
                r'^shipyard_rejected_total\{reason="(?:body_buffer|overloaded)",'
                r'service="sink"\} (\S+)$',
                metrics,
                re.MULTILINE,
            )
            assert sum(float(c) for c in counted) == refused, metrics
    finally:
        host.stop()
