"""The one seam between the proxy and an upstream: an :class:`Adapter` per route.

An adapter turns what the caller sent (a :class:`Call`) into one upstream
:class:`~shipyard.gateway.upstream_http.Request` (path, headers, body; the route's pool knows
the origin), and the upstream's answer back into what the caller expects: a whole body
(:meth:`Adapter.body`), a stream of bytes (:meth:`Adapter.stream`) or an error body
(:meth:`Adapter.error_body`). Adapters hold no connection: the proxy sends the request on the
route's pool, retries, falls back and streams.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from shipyard.gateway.model import Route, RouteType
from shipyard.gateway.upstream_http import Request, Timeouts

_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}


@dataclass
class Usage:
    """Token counts reported by the upstream (None when it did not say)."""

    tokens_in: int | None = None
    tokens_out: int | None = None

    def take(self, usage: Any, inp: str = "prompt_tokens", out: str = "completion_tokens") -> None:
        if isinstance(usage, dict):
            if isinstance(usage.get(inp), int):
                self.tokens_in = usage[inp]
            if isinstance(usage.get(out), int):
                self.tokens_out = usage[out]


@dataclass
class Call:
    """One caller request, as the proxy hands it to an adapter.

    ``kind`` is the OpenAI endpoint (chat, completions, embeddings) or the route's own type;
    ``payload`` the parsed JSON body on the OpenAI surface; ``path`` the sub-path and
    ``query`` the raw query string under ``/gateway/{route}/...``; ``headers`` the caller's
    headers that passed the allow-list.
    """

    kind: RouteType
    method: str = "POST"
    payload: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""
    path: str = ""
    query: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return self.payload.get("stream") is True


class Adapter:
    """Base adapter: JSON in, JSON out, bytes passed through as they are."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.timeouts = Timeouts.of(route.timeout)
        #: the base URL's path: every request target starts with it (the origin is the pool's)
        self.base_path = urlsplit(route.upstream.base_url).path.rstrip("/")

    def request(self, call: Call) -> Request:
        """The upstream request for ``call`` (raises RequestError/TranslationError for 400s)."""
        raise NotImplementedError

    def body(self, data: bytes) -> tuple[bytes, Usage]:
        """A successful (2xx) whole upstream body, as the caller should get it."""
        return data, Usage()

    async def stream(
        self, call: Call, chunks: AsyncIterator[bytes], usage: Usage
    ) -> AsyncIterator[bytes]:
        """A successful streamed body, chunk by chunk, as the caller should get it."""
        async for chunk in chunks:
            yield chunk

    def error_body(self, status: int, data: bytes) -> bytes:
        """An upstream 4xx body (other than 401/403, which the proxy replaces)."""
        return data

    # -- helpers ------------------------------------------------------------------------------
    def headers(self, call: Call, extra: Mapping[str, str] = _JSON_HEADERS) -> dict[str, str]:
        headers = {**call.headers, **extra}
        key = self.route.upstream.api_key
        if key:
            name = self.route.upstream.auth_header
            headers[name] = f"Bearer {key}" if name == "authorization" else key
        return headers

    def post_json(self, path: str, payload: Any, call: Call) -> Request:
        """A POST of ``payload`` as compact JSON to ``base_url + path``."""
        content = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return Request("POST", self.base_path + path, self.headers(call), content, self.timeouts)


__all__ = ["Adapter", "Call", "Usage"]
