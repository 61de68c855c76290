"""API keys: create, verify and revoke them; the local admin token; request checks.

>>> from shipyard.keys import Guard, KeyStore, ensure_admin_token
>>> keys = KeyStore(meta)                                     # doctest: +SKIP
>>> record, plaintext = keys.create("ranker-client", ["invoke:ranker"])  # doctest: +SKIP
>>> Guard(keys).check_invoke(request, "ranker", keys_exist=True)         # doctest: +SKIP

Keys are ``sy_<prefix>_<secret>`` (256 random bits), stored as SHA-256 hashes and compared
in constant time; scopes are ``admin``, ``invoke:<service|*>``, ``route:<route|*>``, ``ui``
(:mod:`shipyard.keys.scopes`). Errors: see :mod:`shipyard.keys.errors`.
"""

from __future__ import annotations

from shipyard.keys.admin import ensure_admin_token, read_admin_token, token_path
from shipyard.keys.errors import (
    AuthError,
    Forbidden,
    KeyInputError,
    KeyNotFound,
    KeysError,
    TokenFileError,
    Unauthorized,
    UnsupportedMediaType,
)
from shipyard.keys.guard import Guard, RequestInfo, is_loopback, reopened_warning
from shipyard.keys.records import KeyRecord
from shipyard.keys.scopes import allows, parse_scope, parse_scopes
from shipyard.keys.store import KeyStore, hash_key

__all__ = [
    "AuthError",
    "Forbidden",
    "Guard",
    "KeyInputError",
    "KeyNotFound",
    "KeyRecord",
    "KeyStore",
    "KeysError",
    "RequestInfo",
    "TokenFileError",
    "Unauthorized",
    "UnsupportedMediaType",
    "allows",
    "ensure_admin_token",
    "hash_key",
    "is_loopback",
    "parse_scope",
    "parse_scopes",
    "read_admin_token",
    "reopened_warning",
    "token_path",
]
