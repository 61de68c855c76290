"""Errors of the gateway, and the two error shapes it answers with.

::

    GatewayError               root of everything shipyard.gateway raises on purpose
    ├── ConfigError            the YAML file is invalid: ``.file``, ``.line``, ``.reason``
    │   └── LimitsError        a route's ``limits`` mapping is malformed: ``.route``
    │                          (also a ValueError)
    ├── RequestError           a request cannot be served as sent: ``.status``, ``.param``
    │   ├── TranslationError   (400) a field has no equivalent at the upstream provider
    │   └── Refused            the proxy answers now (any status, 4xx or 5xx), with
    │                          ``.kind`` and ``.headers`` (``Retry-After``)
    └── UpstreamError          talking to an upstream failed: ``.origin``
        ├── ConnectError       no connection: refused, unreachable, name or TLS failure
        ├── UpstreamTimeout    no connection, free slot, write progress or answer in time
        └── ProtocolError      a malformed answer, or the connection closed in the middle
            └── ResponseTooLarge  a body over the limit given to ``Response.read``

``LimitsError`` lives in :mod:`shipyard.gateway.limits`, the ``UpstreamError`` tree in
:mod:`shipyard.gateway.upstream_http.errors`; the rest here.

On ``/v1/...`` errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``,
so OpenAI clients raise their usual exception classes; under ``/gateway/...`` they use the
host's shape, ``{"error": {"type", "message"}}``. No message ever contains an upstream
credential or a caller's key.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from shipyard.errors import JSON, error_response


class GatewayError(Exception):
    """Root of the gateway's exceptions; the message says what was wrong and the fix."""


class ConfigError(GatewayError):
    """The gateway configuration is invalid. ``str(err)`` reads ``file:line: reason``."""

    def __init__(self, file: object, line: int | None, reason: str) -> None:
        self.file = str(file)
        self.line = line
        self.reason = reason
        where = f"{self.file}:{line}" if line is not None else self.file
        super().__init__(f"{where}: {reason}" if where else reason)


class RequestError(GatewayError):
    """A request the gateway refuses: ``status`` (4xx), ``param`` (the field, if any)."""

    def __init__(
        self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code


class TranslationError(RequestError):
    """A request field that the upstream provider cannot express (400, names the field)."""


class Refused(RequestError):
    """The proxy answers now with this status and message, rendered in the surface's error
    shape (:func:`shipyard.gateway.exchange.refusal`): a refused key, a malformed body, an
    admission's 429, or an upstream that failed (502/504). ``kind`` is the error type
    (OpenAI's ``type`` on ``/v1``, ours on ``/gateway``); ``headers`` go on the answer."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, status=status, param=param, code=code)
        self.kind = kind
        self.headers = headers


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    504: "timeout",
}


def openai_error_body(
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    """An error body in OpenAI's shape."""
    kind = type or _OPENAI_TYPES.get(status, "api_error")
    error = {"message": message, "type": kind, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def openai_error(
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error response in OpenAI's shape (the ``/v1`` surface)."""
    body = openai_error_body(status, message, type=type, param=param, code=code)
    return Response(body, status, headers=headers, media_type=JSON)


def gateway_error(
    status: int, kind: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """An error response in the host's shape (the ``/gateway`` surface):
    :func:`shipyard.errors.error_response`."""
    return error_response(status, kind, message, headers=headers, **extra)


__all__ = [
    "ConfigError",
    "GatewayError",
    "Refused",
    "RequestError",
    "TranslationError",
    "gateway_error",
    "openai_error",
    "openai_error_body",
]
