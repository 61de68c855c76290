"""Cache values as bytes: plain data as msgpack, anything else as an HMAC-signed pickle.

The first byte says which:

- ``0x01`` msgpack: ``None``, ``bool``, ``int`` (64-bit), ``float``, ``str``, ``bytes``, and
  ``list`` / ``tuple`` / ``dict`` (``str`` keys) of those. Tuples come back as lists, as with
  JSON.
- ``0x02`` signed pickle: ``0x02 + HMAC-SHA256(key, pickle) + pickle``. Decoding checks the
  signature in constant time *before* unpickling; an unsigned or tampered value raises
  :class:`UntrustedValue` and is never unpickled.

The signing key is ``SHIPYARD_CACHE_SIGNING_KEY`` (a string of at least 32 characters, e.g.
``openssl rand -hex 32``; every machine that reads or writes the cache needs the same one), or
else ``$SHIPYARD_HOME/cache.key``: 32 random bytes, created with mode 0600 on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
import threading
from pathlib import Path
from typing import Any

import msgpack

from shipyard.cache.backends.base import CacheError

MSGPACK = b"\x01"
PICKLE = b"\x02"
_DIGEST = 32
_KEY_ENV = "SHIPYARD_CACHE_SIGNING_KEY"
_SCALARS = frozenset({type(None), bool, int, float, str, bytes})
_key_lock = threading.Lock()
_keys: dict[tuple[str, str], bytes] = {}


class UntrustedValue(CacheError):
    """A stored pickle whose signature is missing or wrong: refused, never unpickled."""


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is list or kind is tuple:
        # C-speed fast path for the common flat list of numbers or strings
        return _SCALARS.issuperset(map(type, value)) or all(_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str for k in value) and all(_plain(v) for v in value.values())
    return False


def encode(value: Any) -> bytes:
    """``value`` as tagged bytes (msgpack when it is plain data, else a signed pickle)."""
    if _plain(value):
        try:
            packed: bytes = msgpack.packb(value, use_bin_type=True)
            return MSGPACK + packed
        except (OverflowError, ValueError):  # an int beyond 64 bits, a too-deep structure
            pass
    payload = pickle.dumps(value, protocol=5)
    digest = hmac.new(signing_key(), payload, hashlib.sha256).digest()
    return PICKLE + digest + payload


def decode(data: bytes, *, where: str = "") -> Any:
    """The value in ``data`` (as made by :func:`encode`). ``where`` (e.g. ``"namespace
    'home-rows', key 'p1'"``) names the value in errors."""
    tag = data[:1]
    if tag == MSGPACK:
        return msgpack.unpackb(memoryview(data)[1:], raw=False)
    if tag == PICKLE:
        digest, payload = data[1 : 1 + _DIGEST], memoryview(data)[1 + _DIGEST :]
        expected = hmac.new(signing_key(), payload, hashlib.sha256).digest()
        if len(digest) != _DIGEST or not hmac.compare_digest(digest, expected):
            raise UntrustedValue(
                f"refusing to unpickle the cached value of {where or 'a key'}: its signature "
                f"does not match this machine's signing key (tampered, or written with another "
                f"key: set the same {_KEY_ENV} everywhere the cache is written and read)"
            )
        return pickle.loads(payload)
    raise UntrustedValue(
        f"refusing the cached value of {where or 'a key'}: unknown format tag {tag!r} "
        "(not written by shipyard.cache; unsigned pickles are never loaded)"
    )


def signing_key() -> bytes:
    """The HMAC key: ``SHIPYARD_CACHE_SIGNING_KEY``, else ``$SHIPYARD_HOME/cache.key``
    (created on first use)."""
    from shipyard.config import home

    env = os.environ.get(_KEY_ENV, "")
    cache_id = (env, "" if env else os.environ.get("SHIPYARD_HOME", "~"))
    key = _keys.get(cache_id)
    if key is not None:
        return key
    with _key_lock:
        if env:
            if len(env) < 32:
                raise CacheError(
                    f"{_KEY_ENV} is too short ({len(env)} characters): use at least 32, "
                    "e.g. the output of `openssl rand -hex 32`"
                )
            key = env.encode()
        else:
            key = _load_or_create(home() / "cache.key")
        _keys[cache_id] = key
        return key


def _load_or_create(path: Path) -> bytes:
    if not path.exists():
        # write a private temp file, then link it into place: atomic, and a concurrent
        # creator's key wins instead of being overwritten
        tmp = path.with_name(f".cache.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_bytes()
    if len(key) != 32:
        raise CacheError(
            f"{path} should hold 32 random bytes, it holds {len(key)}: delete it to make a new "
            "one (values signed with the old key will then be refused) or restore it"
        )
    return key
