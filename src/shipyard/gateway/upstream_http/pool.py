"""A :class:`Pool` of keep-alive HTTP/1.1 connections to one upstream origin, the
:class:`Request` it sends and the :class:`Response` it answers with."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from shipyard.gateway.upstream_http.connection import Connection
from shipyard.gateway.upstream_http.errors import (
    ConnectError,
    ProtocolError,
    ResponseTooLarge,
    UpstreamError,
    UpstreamTimeout,
)

#: what a pool keeps by default: enough connections for a busy gateway, alive across requests
MAX_CONNECTIONS = 512
MAX_IDLE = 128
KEEPALIVE_EXPIRY = 60.0
#: request bodies up to this size go out in the same write as the head
_COALESCE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed to connect, for each read and write, and to wait for a pool slot."""

    connect: float
    read: float
    write: float
    pool: float

    @classmethod
    def of(cls, seconds: float) -> Timeouts:
        """A route's ``timeout``: for every phase, connecting capped at 10 s (as before)."""
        return cls(min(seconds, 10.0), seconds, seconds, seconds)


@dataclass(frozen=True, slots=True)
class Request:
    """One upstream request: ``target`` is the path and query (``/v1/chat?x=1``).

    The pool adds ``host``, ``user-agent``, ``accept-encoding: identity`` and
    ``content-length``; ``headers`` must not hold those (config forbids forwarding them).
    """

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes
    timeouts: Timeouts


class Response:
    """An upstream answer whose body is still on its connection until read or closed.

    Read it with :meth:`read` or :meth:`stream`, then :meth:`aclose` it (always): a connection
    whose answer was read to the end goes back to the pool, any other is closed.
    """

    def __init__(self, pool: Pool, conn: Connection, read_timeout: float) -> None:
        self.pool = pool
        self.status_code = conn.status
        self._conn: Connection | None = conn
        self._raw = conn.raw_headers
        self._headers: dict[str, str] | None = None
        self._read_timeout = read_timeout

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased names; repeated headers joined with ``", "``."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for raw_name, raw_value in self._raw:
                name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._headers = headers
        return self._headers

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body as it arrived, or None at its end."""
        conn = self._conn
        if conn is None:
            return None
        while True:
            chunk = conn.take()
            if chunk is not None:
                return chunk
            if conn.error is not None:
                self._drop()
                raise conn.error
            if conn.complete:
                self._release()
                return None
            try:
                await conn.wait(self._read_timeout, "further bytes of the answer")
            except BaseException:
                self._drop()
                raise

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, piece by piece, each handed over as soon as it arrived."""
        while (chunk := await self.next_chunk()) is not None:
            yield chunk

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; ResponseTooLarge (and the connection closed) past ``limit`` bytes."""
        chunks, size = [], 0
        while (chunk := await self.next_chunk()) is not None:
            size += len(chunk)
            if limit is not None and size > limit:
                self._drop()
                raise ResponseTooLarge(
                    f"the upstream's answer is larger than {limit} bytes", self.pool.origin
                )
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def aclose(self) -> None:
        """Give the connection back if its answer was read to the end, else close it."""
        conn = self._conn
        if conn is not None:
            if conn.complete and not conn.chunks and conn.error is None:
                self._release()
            else:
                self._drop()

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.pool.release(conn)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class Pool:
    """Keep-alive HTTP/1.1 connections to one origin (``scheme://host:port``).

    At most ``max_connections`` open at once (a request waits up to its pool timeout for a
    slot), at most ``max_idle`` kept idle, each for at most ``keepalive_expiry`` seconds; the
    most recently used idle connection is taken first. https origins use ``ssl_context`` (by
    default certifi's CA bundle, or the system's if certifi is missing). A pooled connection
    found closed before any byte of the answer arrived is retried once on a new connection.
    """

    def __init__(
        self,
        origin: str,
        *,
        max_connections: int = MAX_CONNECTIONS,
        max_idle: int = MAX_IDLE,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{origin!r} is not an http:// or https:// origin")
        self.origin = origin
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = (ssl_context or default_ssl_context()) if parts.scheme == "https" else None
        self.max_connections, self.max_idle = max_connections, max_idle
        self.keepalive_expiry = keepalive_expiry
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != (443 if self.ssl else 80):
            host = f"{host}:{self.port}"
        self._fixed = (
            f"host: {host}\r\nuser-agent: shipyard-gateway\r\naccept-encoding: identity\r\n"
        )
        self._idle: deque[Connection] = deque()  # oldest on the left
        self._open = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.closed = False

    async def send(self, request: Request) -> Response:
        """Send ``request``; its answer once the status line and headers arrived."""
        head = self._head(request)
        conn = await self._acquire(request.timeouts)
        try:
            return await self._exchange(conn, request, head)
        except _Stale:  # the upstream closed an idle connection just as we reused it
            conn = await self._acquire(request.timeouts, fresh=True)
            return await self._exchange(conn, request, head)

    def release(self, conn: Connection) -> None:
        """Take back a connection whose answer arrived whole (closed if it cannot be reused)."""
        self._expire(time.monotonic())
        if self.closed or not conn.reusable() or len(self._idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake()

    def forget(self, conn: Connection) -> None:
        """``conn`` is closed (called once by the connection): free its slot."""
        self._open -= 1
        if conn.idle_since:
            try:
                self._idle.remove(conn)
            except ValueError:
                pass
        self._wake()

    async def aclose(self) -> None:
        """Close the idle connections; busy ones close when their answer is done."""
        self.closed = True
        while self._idle:
            self._idle.pop().close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def close(self) -> None:
        """:meth:`aclose` (its name before the gateway's transport seam)."""
        await self.aclose()

    # -- internals ------------------------------------------------------------------------------
    def _head(self, request: Request) -> bytes:
        lines = [f"{request.method} {request.target} HTTP/1.1\r\n", self._fixed]
        lines += [f"{name}: {value}\r\n" for name, value in request.headers.items()]
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(request.body)}\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        breaks = len(lines) + 2  # the request line, _fixed's three, one per header, the end
        if text.count("\n") != breaks or text.count("\r") != breaks:
            raise ProtocolError("a request header holds a line break", self.origin)
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise ProtocolError("a request header is not latin-1 text", self.origin) from None

    async def _acquire(self, timeouts: Timeouts, fresh: bool = False) -> Connection:
        deadline = None
        while True:
            if self.closed:
                raise UpstreamError(f"the pool for {self.origin} is closed", self.origin)
            if not fresh:
                now = time.monotonic()
                self._expire(now)
                while self._idle:
                    conn = self._idle.pop()
                    if conn.reusable():
                        conn.idle_since = 0.0
                        conn.reused = True
                        return conn
                    conn.close()
            if self._open < self.max_connections:
                return await self._connect(timeouts.connect)
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + timeouts.pool
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise UpstreamTimeout(
                    f"no free connection to {self.origin} within {timeouts.pool:g} s "
                    f"({self.max_connections} busy)",
                    self.origin,
                ) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self, timeout: float) -> Connection:
        self._open += 1
        made: list[Connection] = []

        def factory() -> Connection:
            made.append(Connection(self))
            return made[-1]

        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, conn = await loop.create_connection(
                    factory,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
        except BaseException as exc:
            if made:  # frees the slot once, whether or not connection_lost already did
                made[0].close()
            else:
                self._open -= 1
                self._wake()
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout(
                    f"connecting to {self.origin} took longer than {timeout:g} s", self.origin
                ) from None
            if isinstance(exc, OSError | ssl.SSLError):
                raise ConnectError(f"cannot connect to {self.origin}: {exc}", self.origin) from None
            raise
        if conn.transport is None:  # uvloop may call connection_made a little later
            conn.connection_made(transport)
        return conn

    async def _exchange(self, conn: Connection, request: Request, head: bytes) -> Response:
        timeouts = request.timeouts
        try:
            conn.begin(head_only=request.method == "HEAD")
            body = request.body
            if len(body) <= _COALESCE:
                conn.write(head + body if body else head)
            else:
                conn.write(head)
                conn.write(body)
            if conn.write_paused:
                await conn.drain(timeouts.write)
            while not conn.headers_done:
                if conn.error is not None:
                    if conn.reused and not conn.got_bytes and conn.closed:
                        raise _Stale
                    raise conn.error
                await conn.wait(timeouts.read, "answer")
        except BaseException:
            conn.close()
            raise
        return Response(self, conn, timeouts.read)

    def _expire(self, now: float) -> None:
        idle = self._idle
        while idle and now - idle[0].idle_since > self.keepalive_expiry:
            idle.popleft().close()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _Stale(Exception):
    """A reused connection closed before any byte of the answer: send again, once."""


@lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """Verified TLS with certifi's CA bundle (the system's when certifi is not installed);
    nothing read from the environment (no SSL_CERT_FILE), as httpx with trust_env=False."""
    try:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


__all__ = [
    "KEEPALIVE_EXPIRY",
    "MAX_CONNECTIONS",
    "MAX_IDLE",
    "Pool",
    "Request",
    "Response",
    "Timeouts",
    "default_ssl_context",
]
