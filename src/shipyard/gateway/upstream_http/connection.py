"""One keep-alive HTTP/1.1 connection: an asyncio ``Protocol`` fed to httptools' parser.

The parser's callbacks fill in the answer as bytes arrive (status, headers, body pieces); the
task sending the request waits on :meth:`Connection.wait`, woken by each arrival. Reading
pauses while more than :data:`HIGH_WATER` bytes of body wait for the caller, so a slow
caller holds back a fast upstream instead of filling memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from shipyard.gateway.upstream_http.errors import ProtocolError, UpstreamError, UpstreamTimeout

if TYPE_CHECKING:
    from shipyard.gateway.upstream_http.pool import Pool

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
_FRAMING = (b"content-length", b"transfer-encoding")


class Connection(asyncio.Protocol):
    """A connection of ``pool``; one request at a time, answers read by :class:`Response`."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.reused = False  # taken from the idle connections (not opened for this request)
        self.idle_since = 0.0  # set while in the pool's idle connections
        self.write_paused = False
        self.waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self.begin()
        self.active = False

    # -- the sending side -----------------------------------------------------------------------
    def begin(self, head_only: bool = False) -> None:
        """Forget the last answer; ``head_only``: the answer has no body (HEAD)."""
        self.active = True
        self.head_only = head_only
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # Content-Length or chunked (else the body ends with the connection)
        self.headers_done = False
        self.complete = False
        self.keep_alive = True
        self.got_bytes = False
        self.error: UpstreamError | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.reading_paused = False

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self, timeout: float) -> None:
        """Wait until the transport's write buffer is low again (UpstreamTimeout if not)."""
        while self.write_paused and not self.closed:
            self._drained = self.loop.create_future()
            handle = self.loop.call_later(timeout, self._expire, self._drained, timeout, "write")
            try:
                await self._drained
            finally:
                handle.cancel()
                self._drained = None

    async def wait(self, timeout: float, what: str) -> None:
        """Wait for the next arrival (UpstreamTimeout naming ``what`` after ``timeout`` s)."""
        waiter = self.waiter = self.loop.create_future()
        handle = self.loop.call_later(timeout, self._expire, waiter, timeout, what)
        try:
            await waiter
        finally:
            handle.cancel()
            self.waiter = None

    def take(self) -> bytes | None:
        """The oldest body piece not yet handed over, or None."""
        if not self.chunks:
            return None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.reading_paused and self.buffered <= LOW_WATER and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self) -> bool:
        """Open, and its last answer arrived whole with keep-alive."""
        return (
            not self.closed
            and self.keep_alive
            and self.error is None
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self.pool.forget(self)

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.active:  # bytes nobody asked for: this connection cannot be trusted
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("the upstream switched protocols (HTTP 101)")
        except httptools.HttpParserError as exc:
            self._fail(f"the upstream's answer is not valid HTTP/1.1 ({exc})")
        if self.buffered > HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.active and not self.complete and self.error is None:
            if self.headers_done and not self.framed:  # a body that ends with the connection
                self.complete, self.keep_alive, self.active = True, False, False
            else:
                when = "in the middle of its answer" if self.got_bytes else "without answering"
                self.error = ProtocolError(
                    f"the upstream closed the connection {when}", self.pool.origin
                )
        if not self.closed:
            self.closed = True
            self.pool.forget(self)
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:  # a second answer to one request: never reuse this connection
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.raw_headers.append((name, value))
            if not self.framed and name.lower() in _FRAMING:
                self.framed = True

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue...): the real one follows
            self.raw_headers, self.framed = [], False
            return
        self.status, self.headers_done = status, True
        if self.head_only:  # no body follows, whatever Content-Length says
            self.complete, self.keep_alive, self.active = True, False, False

    def on_body(self, body: bytes) -> None:
        if body and not self.complete:
            self.chunks.append(body)
            self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.headers_done and not self.complete:
            self.complete, self.active = True, False
            self.keep_alive = self.parser.should_keep_alive()

    # -- internals ----------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = ProtocolError(message, self.pool.origin)
        self.keep_alive = False
        self.close()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _expire(self, waiter: asyncio.Future[None], timeout: float, what: str) -> None:
        if not waiter.done():
            origin = self.pool.origin
            message = (
                f"{origin} took no more request bytes within {timeout:g} s"
                if what == "write"
                else f"no {what} from {origin} within {timeout:g} s"
            )
            waiter.set_exception(UpstreamTimeout(message, origin))


__all__ = ["HIGH_WATER", "LOW_WATER", "Connection"]
