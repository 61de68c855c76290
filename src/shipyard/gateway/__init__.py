"""The gateway: an authenticated reverse proxy to LLM providers and hosted services,
configured by a YAML file of routes (:mod:`shipyard.gateway.config`).

>>> from shipyard.gateway import Gateway, load_config
>>> load_config("gateway.yaml").routes["chat"].upstream.model     # doctest: +SKIP
'small-chat'

``shipyard gateway --config gateway.yaml`` runs it alone; ``shipyard serve --gateway-config
gateway.yaml`` mounts it in the host under ``/v1`` and ``/gateway``. Upstreams are reached
through a :class:`Transport` per origin (the pooled HTTP/1.1 client by default);
:mod:`shipyard.gateway.testing` has an in-memory one for tests.
"""

from __future__ import annotations

from shipyard.gateway.app import Gateway
from shipyard.gateway.config import load_config, parse_config
from shipyard.gateway.errors import ConfigError, GatewayError, RequestError, TranslationError
from shipyard.gateway.hooks import Admission, Denied, NoAdmission
from shipyard.gateway.model import (
    GatewayConfig,
    Prices,
    Provider,
    Retries,
    Route,
    RouteType,
    Upstream,
)
from shipyard.gateway.transport import Transport, TransportFactory, UpstreamResponse

__all__ = [
    "Admission",
    "ConfigError",
    "Denied",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "NoAdmission",
    "Prices",
    "Provider",
    "RequestError",
    "Retries",
    "Route",
    "RouteType",
    "TranslationError",
    "Transport",
    "TransportFactory",
    "Upstream",
    "UpstreamResponse",
    "load_config",
    "parse_config",
]
