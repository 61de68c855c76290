"""The connection limits of :mod:`shipyard._server` on a real uvicorn server in a thread: a
stalled body gets 408 and a close, a keep-alive connection's next request is timed too, and
past the cap a new connection displaces the oldest half-sent one (or is closed at once)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from shipyard._server import ConnectionLimits, default_max_connections, server_for

#: reads of 50 ms a client waits for the server's answer or close (bounded: 5 s)
READS = 100


async def _echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(len(await request.body())))


def _serve(limits: ConnectionLimits) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = Starlette(routes=[Route("/echo", _echo, methods=["GET", "POST"])])
    server = server_for(app, "127.0.0.1", port, limits)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(READS):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def port() -> Iterator[int]:
    yield from _serve(ConnectionLimits(header_timeout=1, body_timeout=1))


@pytest.fixture
def capped() -> Iterator[int]:
    yield from _serve(ConnectionLimits(header_timeout=60, body_timeout=60, max_connections=3))


def _read_until_closed(s: socket.socket, reads: int = READS) -> bytes:
    """All the server sends until it closes; b"...<open>" if it did not within the reads."""
    s.settimeout(0.05)
    data = b""
    for _ in range(reads):
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return data + b"<open>"


def test_a_stalled_body_gets_408_and_a_close(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        answer = _read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"type":"request_timeout"' in answer
    assert not answer.endswith(b"<open>")


def test_a_whole_request_is_answered_and_the_next_half_sent_one_is_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        s.settimeout(5)
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n")  # and never the blank line
        assert not _read_until_closed(s).endswith(b"<open>")


def test_past_the_cap_the_oldest_half_sent_connection_makes_room(capped: int) -> None:
    held = [socket.create_connection(("127.0.0.1", capped)) for _ in range(3)]
    try:
        for s in held:
            s.sendall(b"GET /echo HTTP/1.1\r\n")
        with socket.create_connection(("127.0.0.1", capped)) as s:
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert _read_until_closed(s).startswith(b"HTTP/1.1 200 ")
        assert not _read_until_closed(held[0]).endswith(b"<open>")  # the oldest went
        assert _read_until_closed(held[2], reads=20).endswith(b"<open>")  # the newest stays
    finally:
        for s in held:
            s.close()


def test_the_default_cap_leaves_room_under_the_file_limit() -> None:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cap = default_max_connections()
    assert 16 <= cap <= 1000
    assert soft == resource.RLIM_INFINITY or cap <= max(16, soft - 128)


def test_past_the_cap_with_none_half_sent_a_new_connection_is_closed_at_once(
    capped: int,
) -> None:
    held = [socket.create_connection(("127.0.0.1", capped)) for _ in range(3)]
    try:
        for s in held:  # headers read (the 100 says so), the body to come: none is displaced
            s.sendall(
                b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            s.settimeout(5)
            assert s.recv(4096).startswith(b"HTTP/1.1 100 ")
        with socket.create_connection(("127.0.0.1", capped)) as s:
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            assert _read_until_closed(s) == b""
        held[0].sendall(b"abcde")  # the held ones are still served
        assert _read_until_closed(held[0], reads=20).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in held:
            s.close()
