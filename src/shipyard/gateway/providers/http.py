"""Plain HTTP upstreams (``type: http``): method, sub-path, query and body passed through to
``base_url + path``, with a sub-path that can never leave ``base_url``.

:func:`safe_path` refuses, before anything is sent: ``.`` and ``..`` segments, empty
segments (``//``), backslashes, ``@``, percent-encoded ``/``, ``\\``, ``.`` or NUL
(``%2f``, ``%5c``, ``%2e``, ``%00``) and anything that looks like an absolute URL. What a
server further on could still decode into those is refused alike: a segment that is ``.``
or ``..`` once its ``;`` parameters are cut off (``..;``, ``..;jsessionid=1``, as Tomcat
and Spring read it) or once percent-decoded again and again (``%252e%252e``, ``..%3b``),
and a double-encoded ``/``, ``\\`` or NUL (``%252f``). The URL built from it is checked
again to have the base URL's scheme, host, port and path prefix.
"""

from __future__ import annotations

import re
from urllib.parse import quote_from_bytes, unquote, urlsplit

from shipyard.gateway.errors import RequestError
from shipyard.gateway.providers.base import Adapter, Call
from shipyard.gateway.upstream_http import Request

_ENCODED = re.compile(r"%(2f|5c|2e|00)", re.IGNORECASE)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_SAFE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:%/]*")
#: what stays as it is in a query string; anything else is percent-encoded
_QUERY_SAFE = "!$&'()*+,;=:@/?%-._~"


def safe_path(raw: str) -> str:
    """``raw`` (still percent-encoded, no leading ``/``) if it stays under the base URL."""
    why = None
    if _ENCODED.search(raw):
        why = "encoded '/', '\\', '.' or NUL"
    elif "\\" in raw or "@" in raw:
        why = "'\\' or '@'"
    elif _SCHEME.match(raw):
        why = "an absolute URL"
    elif not _SAFE.fullmatch(raw):
        why = "characters that must be percent-encoded"
    else:
        segments = raw.split("/")
        decoded = [_decoded(s) for s in segments]
        if any(_dots(s) for s in segments + decoded):
            why = "'.' or '..' segments"
        elif any(s == "" for s in segments[:-1]):
            why = "an empty segment ('//')"
        elif any(c in s for s in decoded for c in "/\\\0"):
            why = "encoded '/', '\\', '.' or NUL"
    if why is not None:
        raise RequestError(f"the path may not contain {why}", status=400, param="path")
    return raw


def _decoded(segment: str) -> str:
    """``segment`` percent-decoded until nothing changes (``%252e`` -> ``%2e`` -> ``.``),
    what a chain of servers that each decode once could end up with; each round that
    changes it shortens it, so this ends."""
    while (once := unquote(segment, errors="surrogateescape")) != segment:
        segment = once
    return segment


def _dots(segment: str) -> bool:
    """``.`` or ``..``, maybe followed by ``;`` parameters."""
    return segment.partition(";")[0] in (".", "..")


def join(base_url: str, path: str, query: bytes) -> str:
    """The request target (path and query) of ``base_url/path?query``, checked to stay on
    ``base_url``; characters a query may not hold as they are get percent-encoded."""
    base = urlsplit(base_url + "/")
    text = base_url + "/" + safe_path(path)
    if query:
        text += "?" + quote_from_bytes(query, safe=_QUERY_SAFE)
    url = urlsplit(text)
    if (url.scheme, url.netloc) != (base.scheme, base.netloc) or not (
        url.path.startswith(base.path)
    ):
        raise RequestError("the path leaves the route's base URL", status=400, param="path")
    return url.path + ("?" + url.query if url.query else "")


class HttpAdapter(Adapter):
    """Any HTTP server: ``{method} {base_url}/{path}?{query}`` with the body as sent."""

    def request(self, call: Call) -> Request:
        target = join(self.route.upstream.base_url, call.path, call.query)
        return Request(call.method, target, self.headers(call, {}), call.body, self.timeouts)


__all__ = ["HttpAdapter", "join", "safe_path"]
