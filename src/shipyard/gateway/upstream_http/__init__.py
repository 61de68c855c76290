"""The gateway's own HTTP/1.1 client for its upstream calls: one :class:`Pool` of keep-alive
connections per upstream origin, an asyncio ``Protocol`` per connection, httptools' parser.

It does what a proxy needs and nothing else, for a fraction of a general client's CPU per
request: no redirects (a 3xx is returned as it is), no cookies, no proxy, netrc or CA bundle
from the environment (as ``httpx.AsyncClient(trust_env=False)``), no content decoding
(``accept-encoding: identity`` is sent). Bodies framed by Content-Length, chunked or by the
end of the connection are read; :meth:`Response.stream` hands each piece over as soon as it
arrives (SSE pass-through depends on it), and reading pauses while the caller lags.

>>> pool = Pool("https://api.openai.com:443")                              # doctest: +SKIP
>>> request = Request("GET", "/v1/models", {}, b"", Timeouts.of(30))
>>> response = await pool.send(request)                                     # doctest: +SKIP
>>> body = await response.read(limit=1 << 20)                               # doctest: +SKIP
>>> await response.aclose()                                                 # doctest: +SKIP

Errors are in :mod:`shipyard.gateway.upstream_http.errors` (root: :class:`UpstreamError`).
"""

from __future__ import annotations

from shipyard.gateway.upstream_http.errors import (
    ConnectError,
    ProtocolError,
    ResponseTooLarge,
    UpstreamError,
    UpstreamTimeout,
)
from shipyard.gateway.upstream_http.pool import (
    KEEPALIVE_EXPIRY,
    MAX_CONNECTIONS,
    MAX_IDLE,
    Pool,
    Request,
    Response,
    Timeouts,
    default_ssl_context,
)

__all__ = [
    "ConnectError",
    "KEEPALIVE_EXPIRY",
    "MAX_CONNECTIONS",
    "MAX_IDLE",
    "Pool",
    "ProtocolError",
    "Request",
    "Response",
    "ResponseTooLarge",
    "Timeouts",
    "UpstreamError",
    "UpstreamTimeout",
    "default_ssl_context",
]
