"""The seam between the gateway and its upstreams, as httpx's transports are: a
:class:`Transport` sends one :class:`~shipyard.gateway.upstream_http.Request` to one upstream
origin and returns its :class:`UpstreamResponse`.

The gateway makes one transport per origin (``scheme://host:port``) with a
:data:`TransportFactory`; routes with one origin share it, and a reload keeps it while the
origin stays in the file. The default factory is :class:`~shipyard.gateway.upstream_http.Pool`
(keep-alive HTTP/1.1, measured in BENCHMARKS.md); tests pass
:class:`shipyard.gateway.testing.MockTransport`, which answers in memory::

    gateway = Gateway(path, guard=guard, transport=lambda origin: MockTransport(handler))

What a transport must do, beyond answering: raise
:class:`~shipyard.gateway.upstream_http.UpstreamError` (``ConnectError``, ``UpstreamTimeout``,
``ProtocolError``) when it cannot, so the proxy retries and falls back; honour the request's
``timeouts``; never follow a redirect; hand a body's pieces over as they arrive
(:meth:`UpstreamResponse.stream`), since Server-Sent Events pass straight through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

from shipyard.gateway.upstream_http import Request, ResponseTooLarge


class UpstreamResponse(Protocol):
    """An upstream's answer whose body may still be arriving; always :meth:`aclose` it."""

    status_code: int

    @property
    def headers(self) -> Mapping[str, str]:
        """Lower-cased names; repeated headers joined with ``", "``."""
        ...

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body; ``ResponseTooLarge`` past ``limit`` bytes."""
        ...

    def stream(self) -> AsyncIterator[bytes]:
        """The body, piece by piece, each handed over as soon as it arrived."""
        ...

    async def aclose(self) -> None:
        """Release what the answer holds (its connection, its stream)."""
        ...


class Transport(Protocol):
    """Sends requests to one upstream origin."""

    async def send(self, request: Request) -> UpstreamResponse:
        """The answer to ``request`` once its status and headers are known."""
        ...

    async def aclose(self) -> None:
        """Stop: release idle connections; answers still being read finish first."""
        ...


async def read_body(
    response: UpstreamResponse, limit: int | None, origin: str, what: str = "answer"
) -> bytes:
    """All of ``response``'s stream; past ``limit`` bytes it is closed and
    :class:`~shipyard.gateway.upstream_http.ResponseTooLarge` names ``origin`` (for
    responses that stream their body chunk by chunk, as the decoded and the mock ones do)."""
    chunks, size = [], 0
    async for chunk in response.stream():
        size += len(chunk)
        if limit is not None and size > limit:
            await response.aclose()
            raise ResponseTooLarge(f"the upstream's {what} is larger than {limit} bytes", origin)
        chunks.append(chunk)
    return b"".join(chunks)


#: makes the transport of one origin (``scheme://host:port``); ``Pool`` is the default
TransportFactory = Callable[[str], Transport]

__all__ = ["Transport", "TransportFactory", "UpstreamResponse"]
