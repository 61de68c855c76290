"""Error responses in the one shape every part of the host uses:
``{"error": {"type", "message", "field"?, "error_id"?}}``, never a traceback."""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.responses import Response

JSON = "application/json"


def error_body(kind: str, message: str, **extra: Any) -> bytes:
    return json.dumps({"error": {"type": kind, "message": message, **extra}}).encode()


def error_response(
    status: int, kind: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return Response(error_body(kind, message, **extra), status, headers=headers, media_type=JSON)


def new_error_id() -> str:
    return secrets.token_hex(8)
