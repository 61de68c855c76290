"""Upstream adapters, one per provider: :func:`adapter_for` picks the one for a route."""

from __future__ import annotations

from shipyard.gateway.model import Provider, Route
from shipyard.gateway.providers.anthropic import AnthropicAdapter
from shipyard.gateway.providers.base import Adapter, Call, Usage
from shipyard.gateway.providers.hosted import HostedChatAdapter
from shipyard.gateway.providers.http import HttpAdapter
from shipyard.gateway.providers.openai import OpenAIAdapter
from shipyard.gateway.providers.service import ServiceAdapter

_ADAPTERS: dict[Provider, type[Adapter]] = {
    Provider.OPENAI: OpenAIAdapter,
    Provider.ANTHROPIC: AnthropicAdapter,
    Provider.SERVICE: ServiceAdapter,
    Provider.HTTP: HttpAdapter,
}


def adapter_for(route: Route) -> Adapter:
    """The adapter of ``route``'s provider (a hosted service's on a ``chat`` route: the
    :class:`HostedChatAdapter`)."""
    if route.upstream.provider is Provider.SERVICE and route.type.openai:
        return HostedChatAdapter(route)
    return _ADAPTERS[route.upstream.provider](route)


__all__ = [
    "Adapter",
    "AnthropicAdapter",
    "Call",
    "HostedChatAdapter",
    "HttpAdapter",
    "OpenAIAdapter",
    "ServiceAdapter",
    "Usage",
    "adapter_for",
]
