"""One keep-alive HTTP/1.1 connection of the load client: a raw :class:`asyncio.Protocol`
that writes pre-encoded requests and parses answers with ``httptools`` (the parser uvicorn
uses), Content-Length and chunked alike.

Everything happens in callbacks, with no coroutine or future per request: that is what lets
one Python process send thousands of requests a second. The connection only tells its
:class:`Owner` what happened; the owner decides what to send next.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Protocol

import httptools


class Owner(Protocol):
    """What a :class:`Connection` reports to (the load model's driver)."""

    def on_ready(self, conn: Connection) -> None: ...

    def on_response(self, conn: Connection, status: int, done: float) -> None: ...

    def on_failure(self, conn: Connection, name: str) -> None: ...

    def on_closed(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """A connection that carries one request at a time.

    ``intended`` is when the request should have started (the open model's schedule),
    ``sent`` when it was written; both are :func:`time.perf_counter` values."""

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closed = False
        self.intended = 0.0
        self.sent = 0.0

    # --- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.owner.on_ready(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            raise  # our own bug in a callback: let asyncio log it
        except httptools.HttpParserError:
            self.fail("HttpParserError")

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost says whether a request was lost

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy:
            self.busy = False
            self.owner.on_failure(self, type(exc).__name__ if exc else "ConnectionClosed")
        self.owner.on_closed(self)

    # --- httptools callbacks -------------------------------------------------------------
    def on_message_complete(self) -> None:
        done = perf_counter()
        if not self.busy:  # an answer nobody asked for: the stream cannot be trusted
            self.fail("UnexpectedResponse")
            return
        self.busy = False
        status = self.parser.get_status_code()
        if not self.parser.should_keep_alive():
            self.close()
        self.owner.on_response(self, status, done)

    # --- what the owner calls ------------------------------------------------------------
    def send(self, request: bytes, intended: float) -> None:
        """Write ``request``, meant to start at ``intended``."""
        self.busy = True
        self.intended = intended
        self.sent = perf_counter()
        self.transport.write(request)  # type: ignore[union-attr]

    def fail(self, name: str) -> None:
        """Count the request in flight (if any) as failed with ``name`` and drop the
        connection: its byte stream can no longer be trusted."""
        if self.busy:
            self.busy = False
            self.owner.on_failure(self, name)
        self.close(abort=True)

    def close(self, *, abort: bool = False) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            if abort:
                self.transport.abort()
            else:
                self.transport.close()


__all__ = ["Connection", "Owner"]
