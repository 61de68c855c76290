"""The one way shipyard runs an ASGI app: uvicorn with uvloop and httptools, logging to stderr.

``shipyard serve`` (the host), ``shipyard gateway`` and ``shipyard ui`` all start here, so
they log alike and answer alike:

>>> log_to_stderr()                                           # doctest: +SKIP
>>> server_for(app, "127.0.0.1", 8000).run()                  # doctest: +SKIP

With :class:`ConnectionLimits` (``shipyard serve`` passes them) a slow or idle client cannot
hold the server's connections: a connection that has not sent complete request headers within
``header_timeout`` is closed, a request body with no bytes for ``body_timeout`` gets 408 and
is closed, and past ``max_connections`` a new connection displaces the oldest one still
sending its headers, or is closed at once when there is none (so ``/healthz`` answers while
the slots are held by half-sent requests).
"""

from __future__ import annotations

import logging
import resource
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    import uvicorn
    from starlette.types import ASGIApp

log = logging.getLogger("shipyard.server")

#: file descriptors kept free of client connections: the host's own files, stores, workers
FD_RESERVE = 128
#: the connection cap where the file limit allows it
MAX_CONNECTIONS = 1000
#: seconds a timed-out connection may wait for the sweep that closes it, so that a flood of
#: connections is closed in a few sweeps rather than one sweep each
SWEEP_SLACK = 0.1


def default_max_connections() -> int:
    """:data:`MAX_CONNECTIONS`, or fewer when this process's file limit (``ulimit -n``) less
    :data:`FD_RESERVE` is lower (at least 16)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - FD_RESERVE))


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take over its request headers and between body bytes (seconds),
    and how many connections are held at once (None: :func:`default_max_connections`)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int | None = None


def log_to_stderr() -> None:
    """Our log lines (INFO and up, with a timestamp and the logger's name) on stderr."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )


def server_for(
    app: ASGIApp, bind: str, port: int, limits: ConnectionLimits | None = None
) -> uvicorn.Server:
    """The uvicorn server ``app`` runs on: uvloop and httptools, the app's own lifespan, our
    own access log (uvicorn's is off), uvicorn's warnings only; with ``limits``, slow
    clients are timed out and connections capped (see the module's docstring)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=bind,
        port=port,
        loop="uvloop",
        http="httptools" if limits is None else guarded_protocol(limits),
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    return uvicorn.Server(config)


class _Guard:
    """The connections of one server waiting on their client: those still sending headers
    and those whose body has stalled, each with its deadline, oldest first (a dict keeps
    insertion order, and every entry of one dict has the same timeout, so the first entry is
    the first to expire). One sweep timer, at the first deadline, runs while any is waiting;
    a request costs a few dict operations, not a timer."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.header_timeout = limits.header_timeout
        self.body_timeout = limits.body_timeout
        self.max_connections = limits.max_connections or default_max_connections()
        self.headers: dict[Any, float] = {}
        self.bodies: dict[Any, float] = {}
        self.sweeping: asyncio.TimerHandle | None = None
        self.sweep_at = 0.0
        self.logged_at = float("-inf")
        self.displaced = self.refused = 0

    def wait_headers(self, protocol: Any) -> None:
        if protocol not in self.headers:
            deadline = protocol.loop.time() + self.header_timeout
            self.headers[protocol] = deadline
            self._sweep_by(protocol.loop, deadline)

    def wait_body(self, protocol: Any) -> None:
        self.bodies.pop(protocol, None)  # to the end: the newest deadline
        deadline = protocol.loop.time() + self.body_timeout
        self.bodies[protocol] = deadline
        self._sweep_by(protocol.loop, deadline)

    def forget(self, protocol: Any) -> None:
        self.headers.pop(protocol, None)
        self.bodies.pop(protocol, None)

    def admit(self, protocol: Any) -> bool:
        """Whether the new connection ``protocol`` may stay: under the cap, or by displacing
        the oldest connection still sending its headers."""
        if len(protocol.connections) <= self.max_connections:
            return True
        admitted = False
        for oldest in self.headers:
            if oldest is not protocol:
                self.headers.pop(oldest)
                oldest.transport.abort()
                admitted = True
                break
        self._log_full(protocol.loop, admitted)
        return admitted

    def _log_full(self, loop: asyncio.AbstractEventLoop, displaced: bool) -> None:
        """One line a second at most while the cap is reached: a flood logs no flood."""
        self.displaced += displaced
        self.refused += not displaced
        now = loop.time()
        if now - self.logged_at >= 1.0:
            log.warning(
                "%d connections held (--max-connections): %d half-sent closed for newcomers, "
                "%d newcomers refused since the last line",
                self.max_connections,
                self.displaced,
                self.refused,
            )
            self.logged_at, self.displaced, self.refused = now, 0, 0

    def _sweep_by(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """A sweep at ``deadline`` unless one comes before it (or just after: the sweeps of
        a flood of connections are batched at most :data:`SWEEP_SLACK` apart)."""
        if self.sweeping is not None:
            if self.sweep_at <= deadline + SWEEP_SLACK:
                return
            self.sweeping.cancel()
        self.sweep_at = deadline
        self.sweeping = loop.call_at(deadline, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sweeping = None
        now = loop.time()
        closed = 0
        while self.headers:
            protocol, deadline = next(iter(self.headers.items()))
            if deadline > now:
                break
            del self.headers[protocol]
            protocol.transport.abort()
            closed += 1
        stalled = []
        while self.bodies:
            protocol, deadline = next(iter(self.bodies.items()))
            if deadline > now:
                break
            del self.bodies[protocol]
            stalled.append(protocol)
        for protocol in stalled:
            if protocol.flow.read_paused:  # the app is not reading it: not the client's fault
                self.wait_body(protocol)
            else:
                _answer_408(protocol, self.body_timeout)
                closed += 1
        if closed:
            log.warning(
                "closed %d connection(s) that sent no request headers within %gs or no body "
                "bytes for %gs",
                closed,
                self.header_timeout,
                self.body_timeout,
            )
        firsts = [
            next(iter(waiting.values())) for waiting in (self.headers, self.bodies) if waiting
        ]
        if firsts:
            self._sweep_by(loop, max(min(firsts), now + SWEEP_SLACK))


def _answer_408(protocol: Any, timeout: float) -> None:
    """408 on a connection whose body stalled, unless its response has begun; then close."""
    from shipyard.errors import error_body

    cycle = protocol.cycle
    if cycle is not None and not cycle.response_started and not protocol.transport.is_closing():
        body = error_body(
            "request_timeout",
            f"no request body bytes for {timeout:g}s: send the body without pausing",
        )
        cycle.response_started = cycle.response_complete = True
        protocol.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )
    protocol.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with ``limits`` kept (one :class:`_Guard` per server):
    it only adds bookkeeping at the parser's callbacks and leaves each request's path as is."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    guard = _Guard(limits)

    class GuardedProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not guard.admit(self):
                transport.abort()
                return
            guard.wait_headers(self)

        def handle_websocket_upgrade(self) -> None:
            guard.forget(self)  # a WebSocket keeps its own time, and this protocol hands over
            super().handle_websocket_upgrade()

        def connection_lost(self, exc: Exception | None) -> None:
            guard.forget(self)
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            guard.wait_headers(self)  # a keep-alive connection's next request

        def on_headers_complete(self) -> None:
            guard.headers.pop(self, None)
            guard.wait_body(self)
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            guard.wait_body(self)
            super().on_body(body)

        def on_message_complete(self) -> None:
            guard.bodies.pop(self, None)
            super().on_message_complete()

    return GuardedProtocol


__all__ = [
    "ConnectionLimits",
    "default_max_connections",
    "guarded_protocol",
    "log_to_stderr",
    "server_for",
]
