"""Errors raised by the key system.

::

    KeysError                  root of everything shipyard.keys raises on purpose
    ├── KeyInputError          (also a ValueError) a malformed scope, key name or expiry
    ├── KeyNotFound            (also a LookupError) no key with that id or prefix
    ├── TokenFileError         the admin token file is unsafe (group/world readable) or unreadable
    └── AuthError              a request was refused: ``.status``, ``.type``, ``.message``,
        │                      ``.body`` (the DESIGN error body), ``.headers``, ``.response()``
        ├── Unauthorized       401: no key, a malformed header, or an unknown/revoked/expired key
        ├── Forbidden          403: wrong scope, a foreign Host or Origin, open access refused
        └── UnsupportedMediaType  415: an admin write that is not application/json

No message ever contains a presented key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.responses import Response


class KeysError(Exception):
    """Root of the key system's exceptions; the message says what was wrong and the fix."""


class KeyInputError(KeysError, ValueError):
    """A scope, key name or expiry given to create a key is malformed."""


class KeyNotFound(KeysError, LookupError):
    """No key with that id or prefix (``shipyard keys list --all`` shows every key)."""


class TokenFileError(KeysError):
    """The admin token file cannot be used; ``.path`` is the file."""

    def __init__(self, path: object, message: str) -> None:
        super().__init__(message)
        self.path = path


class AuthError(KeysError):
    """A request was refused. The host answers ``status`` with :attr:`body` and :attr:`headers`."""

    status: int = 403
    type: str = "forbidden"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def body(self) -> dict[str, Any]:
        """``{"error": {"type", "message"}}``, as DESIGN.md's error shape (parsed)."""
        return {"error": {"type": self.type, "message": self.message}}

    def response(self) -> Response:
        """The refusal as a response: :func:`shipyard.errors.error_response` with
        :attr:`status`, the body and :attr:`headers`."""
        from shipyard.errors import error_response

        return error_response(self.status, self.type, self.message, headers=self.headers)

    @property
    def headers(self) -> dict[str, str]:
        """Response headers that go with the status (``WWW-Authenticate`` on a 401)."""
        return {}


class Unauthorized(AuthError):
    """401: the request carries no usable key."""

    status = 401
    type = "unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="shipyard"'}


class Forbidden(AuthError):
    """403: the key lacks the scope, or the request comes from where it may not."""

    status = 403
    type = "forbidden"


class UnsupportedMediaType(AuthError):
    """415: admin writes must be ``application/json``."""

    status = 415
    type = "unsupported_media_type"


__all__ = [
    "AuthError",
    "Forbidden",
    "KeyInputError",
    "KeyNotFound",
    "KeysError",
    "TokenFileError",
    "Unauthorized",
    "UnsupportedMediaType",
]
