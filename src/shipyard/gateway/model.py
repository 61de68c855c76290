"""The gateway configuration's types: routes, their upstreams, retries and prices
(read and validated by :mod:`shipyard.gateway.config`)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit


class RouteType(enum.StrEnum):
    """What a route serves; the first three are the OpenAI surface under ``/v1``."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    SERVICE = "service"
    HTTP = "http"

    @property
    def openai(self) -> bool:
        """Served on the OpenAI surface (chat, completions, embeddings)."""
        return self in _OPENAI_TYPES


_OPENAI_TYPES = frozenset({RouteType.CHAT, RouteType.COMPLETIONS, RouteType.EMBEDDINGS})


class Provider(enum.StrEnum):
    """Who answers a route."""

    OPENAI = "openai"  # any OpenAI-compatible server: OpenAI, vLLM, llama.cpp, Ollama...
    ANTHROPIC = "anthropic"
    SERVICE = "service"  # a service hosted by shipyard (a `service` route, or a `chat` route)
    HTTP = "http"  # any HTTP base URL, passed through


DEFAULT_BASE_URLS = {
    Provider.OPENAI: "https://api.openai.com/v1",
    Provider.ANTHROPIC: "https://api.anthropic.com/v1",
}
ANTHROPIC_VERSION = "2023-06-01"
#: headers a route may never add to ``forward_headers``: credentials, routing, and the
#: body's encoding (upstreams are asked for identity bodies, which can be scrubbed)
NEVER_FORWARDED = frozenset(
    {
        "accept-encoding",
        "te",
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "x-api-key",
        "api-key",
        "content-length",
        "transfer-encoding",
        "connection",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
    }
)


@dataclass(frozen=True)
class Upstream:
    """Where a route sends its requests. ``api_key`` is resolved and never printed."""

    provider: Provider
    base_url: str
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    service: str | None = None
    #: the endpoint a ``chat`` route with ``provider: service`` posts to
    endpoint: str | None = None
    auth_header: str = "authorization"
    max_tokens: int | None = None
    anthropic_version: str = ANTHROPIC_VERSION

    @property
    def origin(self) -> str:
        """``scheme://host:port``: routes with one origin share one connection pool."""
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.scheme}://{parts.hostname}:{port}"


@dataclass(frozen=True)
class Retries:
    """Extra attempts on a connect error, a timeout, 429 or 5xx, with jittered backoff."""

    attempts: int = 2
    backoff: float = 0.25
    max_backoff: float = 4.0


@dataclass(frozen=True)
class Prices:
    """Prices per 1,000 tokens, for budgets in money."""

    input_per_1k: float
    output_per_1k: float
    currency: str = "USD"


@dataclass(frozen=True)
class Route:
    """One route of the gateway (see the module docstring for the YAML)."""

    name: str
    type: RouteType
    upstream: Upstream
    timeout: float = 60.0
    retries: Retries = Retries()
    fallback: tuple[str, ...] = ()
    limits: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    prices: Prices | None = None
    forward_headers: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class GatewayConfig:
    """A validated configuration: routes by name, in file order."""

    routes: Mapping[str, Route]
    file: str = "<config>"
    format: str = "shipyard"

    def chain(self, name: str) -> tuple[Route, ...]:
        """``name`` then its fallbacks, depth first, each route once."""
        seen: list[str] = []

        def visit(n: str) -> None:
            if n in seen:
                return
            seen.append(n)
            for f in self.routes[n].fallback:
                visit(f)

        visit(name)
        return tuple(self.routes[n] for n in seen)
