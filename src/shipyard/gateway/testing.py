"""Upstreams in memory, for testing a gateway without servers, sockets or sleeps.

:class:`MockTransport` answers every request with a handler you write, as httpx's
``MockTransport`` does. The gateway makes one transport per upstream origin, so pass a
factory; the handler sees the :class:`~shipyard.gateway.upstream_http.Request` the gateway
sends (``method``, ``target`` — the path and query —, ``headers``, ``body``, ``timeouts``)
and returns a :class:`MockResponse`:

>>> def upstream(request: Request) -> MockResponse:
...     return MockResponse(200, json={"object": "list", "data": []})
>>> gateway = Gateway("gateway.yaml", guard=guard,
...                   transport=lambda origin: MockTransport(upstream))   # doctest: +SKIP
>>> with TestClient(gateway) as client:                               # doctest: +SKIP
...     client.post("/v1/embeddings", json={"model": "embed", "input": "x"}, headers=auth)

Several upstreams: map each origin (``scheme://host:port`` of a route's ``base_url``) to its
own transport, ``transport={"http://a.test:80": MockTransport(a), ...}.__getitem__``.

A handler may be async, and may raise :class:`~shipyard.gateway.upstream_http.ConnectError`
(an upstream that is down) or any other
:class:`~shipyard.gateway.upstream_http.UpstreamError`. A streamed body is an async iterable
of chunks (``MockResponse(200, stream=events())``), handed to the gateway one by one as the
iterable produces them. The request's read timeout holds as on a real connection: a handler,
or a chunk, that takes longer raises :class:`~shipyard.gateway.upstream_http.UpstreamTimeout`
— a handler that waits forever (``await asyncio.Event().wait()``) tests a timeout without a
sleep.
"""

from __future__ import annotations

import asyncio
import inspect
import json as jsonlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from shipyard.gateway.transport import read_body
from shipyard.gateway.upstream_http import (
    Request,
    UpstreamError,
    UpstreamTimeout,
)


class MockResponse:
    """An upstream's answer: ``content`` (bytes), ``json`` (serialised, with its content type)
    or ``stream`` (an async iterable of chunks, sent as they come). Make one per request: its
    body is read once."""

    def __init__(
        self,
        status_code: int = 200,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes = b"",
        json: Any = None,
        stream: AsyncIterable[bytes] | None = None,
    ) -> None:
        self.status_code = status_code
        self._headers = {k.lower(): v for k, v in (headers or {}).items()}
        if json is not None:
            content = jsonlib.dumps(json).encode()
            self._headers.setdefault("content-type", "application/json")
        self._chunks: AsyncIterator[bytes] | None = (
            aiter(stream) if stream is not None else _once(content)
        )
        self._read_timeout: float | None = None
        self._origin = ""
        self.closed = False

    @property
    def headers(self) -> Mapping[str, str]:
        """Lower-cased names."""
        return self._headers

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; :class:`ResponseTooLarge` past ``limit`` bytes."""
        return await read_body(self, limit, self._origin)

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk, each within the request's read timeout."""
        chunks = self._chunks
        if chunks is None:
            return
        while True:
            try:
                async with asyncio.timeout(self._read_timeout):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                self._chunks = None
                return
            except TimeoutError:
                await self.aclose()
                raise UpstreamTimeout(
                    f"no further bytes of the answer within {self._read_timeout:g} s",
                    self._origin,
                ) from None
            if chunk:
                yield chunk

    async def aclose(self) -> None:
        """Stop the body's stream (a generator's ``finally`` runs)."""
        chunks, self._chunks = self._chunks, None
        self.closed = True
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


#: what a :class:`MockTransport` calls for each request (sync or async)
Handler = Callable[[Request], MockResponse | Awaitable[MockResponse]]


class MockTransport:
    """A :class:`~shipyard.gateway.transport.Transport` that answers with ``handler``;
    ``requests`` holds every request sent, in order."""

    def __init__(self, handler: Handler, *, origin: str = "") -> None:
        self.handler = handler
        self.origin = origin
        self.requests: list[Request] = []
        self.closed = False

    async def send(self, request: Request) -> MockResponse:
        """The handler's answer, within the request's read timeout."""
        if self.closed:
            raise UpstreamError("the mock transport is closed", self.origin)
        self.requests.append(request)
        timeout = request.timeouts.read
        try:
            async with asyncio.timeout(timeout):
                answer = self.handler(request)
                response = await answer if inspect.isawaitable(answer) else answer
        except TimeoutError:
            raise UpstreamTimeout(
                f"no answer from {self.origin or 'the mock upstream'} within {timeout:g} s",
                self.origin,
            ) from None
        response._read_timeout = timeout
        response._origin = self.origin
        return response

    async def aclose(self) -> None:
        """Refuse further requests."""
        self.closed = True


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content


if TYPE_CHECKING:
    from shipyard.gateway.transport import Transport

    def _a_transport(mock: MockTransport) -> Transport:  # mypy checks the seam is met
        return mock


__all__ = ["Handler", "MockResponse", "MockTransport"]
