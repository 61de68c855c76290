"""What can go wrong talking to an upstream (the proxy retries the first two), a branch of
the gateway's tree (:mod:`shipyard.gateway.errors`)::

UpstreamError            anything that went wrong talking to an upstream
├── ConnectError         no connection: refused, unreachable, name or TLS failure
├── UpstreamTimeout      no connection, free slot, write progress or answer in time
└── ProtocolError        a malformed answer, or the connection closed in the middle
    └── ResponseTooLarge a body over the limit given to ``Response.read``
"""

from __future__ import annotations

from shipyard.gateway.errors import GatewayError


class UpstreamError(GatewayError):
    """Talking to an upstream failed; ``origin`` is the upstream's ``scheme://host:port``."""

    def __init__(self, message: str, origin: str = "") -> None:
        super().__init__(message)
        self.origin = origin


class ConnectError(UpstreamError):
    """No connection could be made (refused, unreachable, DNS or TLS failure)."""


class UpstreamTimeout(UpstreamError):
    """The connection, a free slot in the pool, write progress or the answer took too long."""


class ProtocolError(UpstreamError):
    """The upstream's answer is not valid HTTP/1.1, or the connection closed in the middle."""


class ResponseTooLarge(ProtocolError):
    """The body is larger than the limit given to ``Response.read``."""


__all__ = ["ConnectError", "ProtocolError", "ResponseTooLarge", "UpstreamError", "UpstreamTimeout"]
