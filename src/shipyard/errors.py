"""The one error shape every HTTP surface answers with (host, admin API, UI, gateway's
``/gateway`` routes), and the one error id a 500 carries to find it in the logs.

``{"error": {"type": "not_found", "message": "no service named 'x'", "field"?, "error_id"?}}``

The OpenAI-compatible ``/v1`` surface keeps OpenAI's own shape
(:func:`shipyard.gateway.errors.openai_error_body`).

>>> error_body("not_found", "no service named 'x'")
b'{"error":{"type":"not_found","message":"no service named \\'x\\'"}}'
"""

from __future__ import annotations

import http
import json
import secrets
from collections.abc import Mapping, Sequence
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


class HTTPError(Exception):
    """An HTTP error answer, on both sides of a call.

    Raised in an endpoint, the caller gets ``status`` and the error body below; in a batched
    endpoint, ``items`` (indices into the list it was called with) names the bad items, and
    only the requests holding them get the error. Raised by the service client
    (``shipyard.connect``) for an error answer, with the answer's ``body`` and ``headers``.

    >>> err = HTTPError(422, "expected 4 features, got 1", field="features")
    >>> err.type, err.to_body()[:48]
    ('validation_error', b'{"error":{"type":"validation_error","message":"e')
    """

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        *,
        type: str | None = None,
        items: Sequence[int] | None = None,
        error_id: str | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be an int from 400 to 599, got {status!r}")
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.type = type or status_type(status)
        self.items = tuple(items) if items is not None else None
        self.error_id = error_id
        #: the whole error body (set by the client from the answer)
        self.body: dict[str, Any] = dict(body) if body is not None else {}
        self.headers: dict[str, str] = dict(headers or {})
        #: with ``items``: each named item's own error, by index (``Signature.validate``
        #: sets it); in a batch, each request gets the one of its first named item
        self.item_errors: dict[int, HTTPError] = {}

    def to_body(self) -> bytes:
        """The answer's JSON body (:func:`error_body`)."""
        return error_body(self.type, self.message, field=self.field, error_id=self.error_id)

    def __str__(self) -> str:
        where = f" (field {self.field!r})" if self.field else ""
        return f"{self.status} {self.type}: {self.message}{where}"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self.status}, {self.message!r}, field={self.field!r})"


def status_type(status: int) -> str:
    """The error ``type`` for a status without one: its reason phrase in snake case (422 is
    ``validation_error``, as the host's own request validation answers).

    >>> status_type(404), status_type(422), status_type(429), status_type(599)
    ('not_found', 'validation_error', 'too_many_requests', 'http_599')
    """
    if status == 422:
        return "validation_error"
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        return f"http_{status}"
    return "_".join(phrase.lower().replace("-", " ").replace("'", "").split())


def new_error_id() -> str:
    """A fresh id for one failure: logged with its traceback, sent to the client without."""
    return secrets.token_hex(8)


__all__ = ["JSON", "HTTPError", "error_body", "error_response", "new_error_id", "status_type"]
