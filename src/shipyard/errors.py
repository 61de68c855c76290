"""The one error shape every HTTP surface answers with (host, admin API, UI, gateway's
``/gateway`` routes), and the one error id a 500 carries to find it in the logs.

``{"error": {"type": "not_found", "message": "no service named 'x'", "field"?, "error_id"?}}``

The OpenAI-compatible ``/v1`` surface keeps OpenAI's own shape
(:func:`shipyard.gateway.errors.openai_error_body`).

>>> error_body("not_found", "no service named 'x'")
b'{"error":{"type":"not_found","message":"no service named \\'x\\'"}}'
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when used: a worker process sends error bodies, never a Response
    from starlette.responses import Response

#: the media type of every error body
JSON = "application/json"


def error_body(type: str, message: str, **extra: Any) -> bytes:
    """``{"error": {"type", "message", **extra}}`` as compact JSON bytes; an ``extra`` that
    is None (``field=None``, ``error_id=None``) is left out."""
    error: dict[str, Any] = {"type": type, "message": message}
    error.update((k, v) for k, v in extra.items() if v is not None)
    return json.dumps({"error": error}, separators=(",", ":")).encode()


def error_response(
    status: int, type: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """:func:`error_body` as a Starlette response with ``status``."""
    from starlette.responses import Response

    return Response(error_body(type, message, **extra), status, headers=headers, media_type=JSON)


def new_error_id() -> str:
    """A fresh id for one failure: logged with its traceback, sent to the client without."""
    return secrets.token_hex(8)


__all__ = ["JSON", "error_body", "error_response", "new_error_id"]
