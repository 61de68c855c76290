"""shipyard.keys' public surface: sorted, every name importable; the error hierarchy."""

from __future__ import annotations

import shipyard.keys as keys
from shipyard.keys import (
    AuthError,
    Forbidden,
    KeyInputError,
    KeyNotFound,
    KeysError,
    TokenFileError,
    Unauthorized,
    UnsupportedMediaType,
)


def test_all_is_sorted_and_importable() -> None:
    assert keys.__all__ == sorted(keys.__all__)
    for name in keys.__all__:
        assert getattr(keys, name) is not None


def test_error_hierarchy() -> None:
    for error in (KeyInputError, KeyNotFound, TokenFileError, AuthError):
        assert issubclass(error, KeysError)
    assert issubclass(KeyInputError, ValueError) and issubclass(KeyNotFound, LookupError)
    for error, status, kind in (
        (Unauthorized, 401, "unauthorized"),
        (Forbidden, 403, "forbidden"),
        (UnsupportedMediaType, 415, "unsupported_media_type"),
    ):
        exc = error("why and how to fix it")
        assert isinstance(exc, AuthError)
        assert exc.status == status
        assert exc.body == {"error": {"type": kind, "message": "why and how to fix it"}}
    assert Unauthorized("x").headers == {"WWW-Authenticate": 'Bearer realm="shipyard"'}
    assert Forbidden("x").headers == {}
