"""Services hosted by shipyard (``type: service``): ``POST /gateway/{route}/{endpoint}`` goes
to ``POST {host_url}/{service}/{endpoint}`` with the JSON body as sent."""

from __future__ import annotations

import re

from shipyard.gateway.errors import RequestError
from shipyard.gateway.providers.base import Adapter, Call
from shipyard.gateway.upstream_http import Request

ENDPOINT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class ServiceAdapter(Adapter):
    """A service on the shipyard host; ``api_key`` (an ``invoke:`` key) is sent if set."""

    def request(self, call: Call) -> Request:
        if call.method != "POST":
            raise RequestError(
                f"service routes take POST /gateway/{self.route.name}/<endpoint>, "
                f"not {call.method}",
                status=405,
            )
        if not ENDPOINT.fullmatch(call.path):
            raise RequestError(
                f"{call.path!r} is not an endpoint name: "
                f"POST /gateway/{self.route.name}/<endpoint>",
                status=404,
                param="endpoint",
            )
        return Request(
            "POST",
            f"{self.base_path}/{call.path}",
            self.headers(call, {"content-type": "application/json"}),
            call.body,
            self.timeouts,
        )


__all__ = ["ENDPOINT", "ServiceAdapter"]
