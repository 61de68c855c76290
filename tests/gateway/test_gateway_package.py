"""The gateway package's public surface."""

from __future__ import annotations

import json

import shipyard.gateway as gateway
from shipyard.errors import error_body
from shipyard.gateway.errors import Refused, gateway_error
from shipyard.gateway.limits import LimitsError
from shipyard.gateway.upstream_http import ConnectError, ResponseTooLarge, UpstreamError


def test_all_is_sorted_and_importable() -> None:
    assert gateway.__all__ == sorted(gateway.__all__)
    for name in gateway.__all__:
        assert getattr(gateway, name) is not None


def test_one_error_tree_under_gateway_error() -> None:
    assert issubclass(Refused, gateway.RequestError)
    assert issubclass(LimitsError, gateway.ConfigError) and issubclass(LimitsError, ValueError)
    for upstream in (UpstreamError, ConnectError, ResponseTooLarge):
        assert issubclass(upstream, gateway.GatewayError)
    refused = Refused(429, "over the limit", kind="rate_limit_exceeded", param="model")
    assert (refused.status, refused.message, refused.param, refused.kind) == (
        429, "over the limit", "model", "rate_limit_exceeded",
    )  # fmt: skip


def test_the_gateway_surface_answers_with_the_shared_error_body() -> None:
    response = gateway_error(404, "not_found", "no gateway route named 'x'", field="route")
    assert response.body == error_body("not_found", "no gateway route named 'x'", field="route")
    assert json.loads(response.body) == {
        "error": {"type": "not_found", "message": "no gateway route named 'x'", "field": "route"}
    }
