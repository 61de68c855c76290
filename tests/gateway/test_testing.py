"""``shipyard.gateway.testing``: the in-memory transport keeps the contract of the pooled
client — answers, streamed bodies piece by piece, the read timeout, the size limit, close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shipyard.gateway.testing import MockResponse, MockTransport
from shipyard.gateway.upstream_http import (
    ConnectError,
    Request,
    ResponseTooLarge,
    Timeouts,
    UpstreamError,
    UpstreamTimeout,
)


def request(target: str = "/v1/x", *, timeout: float = 5.0, body: bytes = b"{}") -> Request:
    return Request("POST", target, {"content-type": "application/json"}, body, Timeouts.of(timeout))


def test_a_handler_answers_and_every_request_is_kept() -> None:
    def handler(req: Request) -> MockResponse:
        return MockResponse(201, headers={"X-Trace": "t1"}, json={"got": req.target})

    async def main() -> None:
        transport = MockTransport(handler)
        response = await transport.send(request("/v1/a?b=1"))
        assert response.status_code == 201
        assert response.headers == {"x-trace": "t1", "content-type": "application/json"}
        assert await response.read() == b'{"got": "/v1/a?b=1"}'
        await response.aclose()
        assert [r.target for r in transport.requests] == ["/v1/a?b=1"]

    asyncio.run(main())


def test_a_streamed_body_is_handed_over_piece_by_piece() -> None:
    produced: list[int] = []

    async def events() -> AsyncIterator[bytes]:
        for i in range(3):
            produced.append(i)
            yield f"data: {i}\n\n".encode()

    async def handler(req: Request) -> MockResponse:
        return MockResponse(200, headers={"content-type": "text/event-stream"}, stream=events())

    async def main() -> None:
        response = await MockTransport(handler).send(request())
        received = []
        async for chunk in response.stream():
            received.append(chunk)
            assert len(produced) == len(received)  # nothing was read ahead
        assert received == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]

    asyncio.run(main())


def test_the_read_timeout_holds_for_the_answer_and_for_each_chunk() -> None:
    async def silent(req: Request) -> MockResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def stalls() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.Event().wait()

    async def main() -> None:
        with pytest.raises(UpstreamTimeout, match="within 0.05 s"):
            await MockTransport(silent).send(request(timeout=0.05))
        response = await MockTransport(lambda r: MockResponse(stream=stalls())).send(
            request(timeout=0.05)
        )
        chunks = response.stream()
        assert await anext(chunks) == b"first"
        with pytest.raises(UpstreamTimeout):
            await anext(chunks)

    asyncio.run(main())


def test_errors_a_limit_and_close() -> None:
    def down(req: Request) -> MockResponse:
        raise ConnectError("connection refused", "http://down.test:80")

    async def main() -> None:
        with pytest.raises(ConnectError):
            await MockTransport(down).send(request())
        big = MockTransport(lambda r: MockResponse(content=b"x" * 100))
        response = await big.send(request())
        with pytest.raises(ResponseTooLarge):
            await response.read(limit=10)
        await big.aclose()
        with pytest.raises(UpstreamError, match="closed"):
            await big.send(request())

    asyncio.run(main())
