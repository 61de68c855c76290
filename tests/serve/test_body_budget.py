"""Request bodies on a real host (``shipyard serve`` in a subprocess, ``--max-body-buffer 2MB
--max-in-flight 2``): a call is admitted before its body is read (a 503 reaches a client that
sent only its headers), the bodies held are bounded host-wide, a body the host does not have
whole is streamed to the worker and answered right, a chunked body over the limit gets 413
mid-stream, and a client that leaves mid-body leaves nothing held. After every test the
host holds no body bytes (every reservation released); :class:`BodyBudget` is tested alone
at the end.

Raw sockets send the bodies part by part: the test decides what the host has seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import select
import socket
from collections.abc import Iterator

import httpx
import pytest
from hosts import HostProcess

from shipyard.serve.bodies import BodyBudget
from support.waiting import wait_for

ECHO = """
import hashlib

from shipyard.serve import Service, endpoint


class Echo(Service):
    @endpoint
    def digest(self, data: str) -> str:
        return f"{len(data)}:{hashlib.sha256(data.encode()).hexdigest()}"
"""

BUFFER = 2 << 20
PATH = "/echo/digest"


def _body(size: int, fill: str = "x") -> tuple[bytes, str]:
    """A JSON body of ``size`` bytes, and the answer the endpoint gives to it."""
    length = size - len('{"data": ""}')
    data = (fill * length)[:length]
    answer = f"{len(data)}:{hashlib.sha256(data.encode()).hexdigest()}"
    return json.dumps({"data": data}).encode(), answer


class _Upload:
    """A POST whose body the test sends part by part (``length=None``: chunked)."""

    def __init__(self, port: int, length: int | None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        framing = (
            f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
        )
        self.chunked = length is None
        self.sock.sendall(
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{framing}\r\n\r\n".encode()
        )

    def send(self, data: bytes) -> None:
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n"
        self.sock.sendall(data)

    def answered(self) -> bool:
        return bool(select.select([self.sock], [], [], 0)[0])

    def response(self) -> tuple[int, dict[str, str], bytes]:
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed without a response: {buffer!r}"
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            assert chunk, "closed in the middle of the response"
            rest += chunk
        return int(lines[0].split()[1]), headers, rest[:length]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    tmp = tmp_path_factory.mktemp("bodies")
    path = tmp / "echo_service.py"
    path.write_text(ECHO)
    args = (f"{path}:Echo", "--name", "echo", "--max-body-buffer", "2MB", "--max-in-flight", "2")
    host = HostProcess(tmp / "home", args=args).start()
    try:
        wait_for(lambda: _call(host, b'{"data": "ab"}')[0] == 200, "the service", timeout=60)
        yield host
    finally:
        host.stop()


@pytest.fixture(autouse=True)
def nothing_held_after(host: HostProcess) -> Iterator[None]:
    yield
    wait_for(lambda: _held(host) == 0, "the host to hold no body bytes")
    assert _call(host, b'{"data": "after"}') == (200, "5:" + hashlib.sha256(b"after").hexdigest())


def _call(host: HostProcess, body: bytes) -> tuple[int, object]:
    r = httpx.post(host.url + PATH, content=body, timeout=30)
    return r.status_code, r.json()


def _metrics(host: HostProcess) -> str:
    return httpx.get(host.url + "/metrics", timeout=10).text


def _held(host: HostProcess) -> float:
    found = re.search(r"^shipyard_body_bytes_held (\S+)$", _metrics(host), re.MULTILINE)
    assert found is not None
    return float(found.group(1))


def _rejected(host: HostProcess, reason: str) -> float:
    found = re.search(
        rf'^shipyard_rejected_total\{{reason="{reason}",service="echo"\}} (\S+)$',
        _metrics(host),
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


def test_a_body_sent_in_parts_is_streamed_to_the_worker_and_answered(host: HostProcess) -> None:
    body, answer = _body(1_500_000, "ab")
    upload = _Upload(host.port, len(body))
    try:
        for start in range(0, len(body), 100_000):
            upload.send(body[start : start + 100_000])
        status, _, payload = upload.response()
        assert (status, json.loads(payload)) == (200, answer)
    finally:
        upload.close()
    # chunked (no Content-Length), through httpx: reserved as it arrives, answered the same
    parts = (body[i : i + 65536] for i in range(0, len(body), 65536))
    r = httpx.post(host.url + PATH, content=parts, timeout=30)
    assert (r.status_code, r.json()) == (200, answer)
    small, small_answer = _body(100)  # chunked, and whole in the host's first message
    r = httpx.post(host.url + PATH, content=iter([small]), timeout=30)
    assert (r.status_code, r.json()) == (200, small_answer)


def test_a_call_past_the_budget_gets_503_before_its_body_is_read(host: HostProcess) -> None:
    refused_before = _rejected(host, "body_buffer")
    body, answer = _body(1_500_000)
    first = _Upload(host.port, len(body))
    second = _Upload(host.port, 1_000_000)
    try:
        first.send(body[:100_000])
        wait_for(lambda: _held(host) == len(body), "the first call's reservation")
        # the second sent its headers only: the host answers without reading a byte more
        status, headers, payload = second.response()
        assert status == 503 and headers["retry-after"] == "1", payload
        error = json.loads(payload)["error"]
        assert error["type"] == "overloaded"
        assert "--max-body-buffer" in error["message"] and "2 MB" in error["message"]
        first.send(body[100_000:])
        status, _, payload = first.response()
        assert (status, json.loads(payload)) == (200, answer)
    finally:
        first.close()
        second.close()
    assert _rejected(host, "body_buffer") == refused_before + 1


def test_a_body_larger_than_the_whole_budget_is_413_at_once(host: HostProcess) -> None:
    upload = _Upload(host.port, 3_000_000)
    try:
        status, _, payload = upload.response()  # headers only
    finally:
        upload.close()
    error = json.loads(payload)["error"]
    assert (status, error["type"]) == (413, "payload_too_large")
    assert "--max-body-buffer" in error["message"]


def test_a_chunked_body_over_the_limit_gets_413_mid_stream(host: HostProcess) -> None:
    upload = _Upload(host.port, None)
    try:
        upload.send(b'{"data": "')
        sent = 0
        while not upload.answered() and sent <= BUFFER:
            upload.send(b"x" * 256_000)
            sent += 256_000
        # the body is not finished (no last chunk, no closing quote): the answer can only
        # come from the host refusing it mid-stream, once over the limit
        status, _, payload = upload.response()
    finally:
        upload.close()
    assert sent > BUFFER
    error = json.loads(payload)["error"]
    assert (status, error["type"]) == (413, "payload_too_large")


def test_replica_slots_count_calls_still_sending_their_body(host: HostProcess) -> None:
    body, answer = _body(100)
    waiting = [_Upload(host.port, len(body)) for _ in range(2)]  # headers only: pending
    third = None
    try:
        wait_for(lambda: _held(host) == 2 * len(body), "both calls admitted")
        third = _Upload(host.port, len(body))
        status, headers, payload = third.response()
        assert (status, headers["retry-after"]) == (503, "1")
        assert "is overloaded" in json.loads(payload)["error"]["message"]
        for upload in waiting:
            upload.send(body)
            status, _, payload = upload.response()
            assert (status, json.loads(payload)) == (200, answer)
    finally:
        for upload in [*waiting, *([third] if third else [])]:
            upload.close()


def test_a_client_that_leaves_mid_body_leaves_nothing_held(host: HostProcess) -> None:
    (pid,) = host.worker_pids("echo")
    body, answer = _body(1_500_000)
    for length in (len(body), None):  # declared, then chunked
        upload = _Upload(host.port, length)
        upload.send(body[:10])
        upload.send(body[10:600_000])
        wait_for(lambda: _held(host) >= 600_000, "the body to stream")
        upload.close()  # gone mid-body: the host tells the worker to drop it
        wait_for(lambda: _held(host) == 0, "the reservation released")
    # both replica slots are free again (in flight and pending): two calls are admitted
    waiting = [_Upload(host.port, 100) for _ in range(2)]
    try:
        wait_for(lambda: _held(host) == 200, "both calls admitted")
    finally:
        for upload in waiting:
            upload.close()
    wait_for(lambda: _held(host) == 0, "the reservations released")
    assert _call(host, body) == (200, answer)
    assert host.worker_pids("echo") == [pid]  # the same worker, never crashed
    assert 'shipyard_worker_restarts_total{service="echo"}' not in _metrics(host)


def test_the_budget_counts_and_refuses() -> None:
    budget = BodyBudget(100, trim=lambda: None)
    assert budget.reserve(60) and budget.reserve(40)
    assert not budget.reserve(1)
    assert budget.held == 100
    budget.release(60)
    assert budget.reserve(50) and budget.held == 90
    budget.release(50)
    budget.release(40)
    assert budget.held == 0 and budget.trims == 0  # never held more than trim_after


def test_an_empty_budget_trims_after_a_large_hold_at_most_once_an_interval() -> None:
    trimmed: list[int] = []

    async def run() -> None:
        budget = BodyBudget(1 << 30, trim_interval=0.2, trim=lambda: trimmed.append(budget.held))
        budget.reserve(40 << 20)
        budget.release(40 << 20)
        assert trimmed == []  # never on the caller's path: from a timer
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert trimmed == [0]
        budget.reserve(40 << 20)
        budget.release(40 << 20)  # within the interval: later
        await asyncio.sleep(0.05)
        assert trimmed == [0]
        await asyncio.sleep(0.25)
        assert trimmed == [0, 0]
        budget.reserve(1 << 20)
        budget.release(1 << 20)  # small since the last trim: none
        await asyncio.sleep(0.25)
        assert trimmed == [0, 0] and budget.trims == 2

    asyncio.run(run())
