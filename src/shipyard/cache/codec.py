"""Cache values as bytes: plain data as msgpack, anything else as an Ed25519-signed pickle.

The first byte says which:

- ``0x01`` msgpack: ``None``, ``bool``, ``int`` (64-bit), ``float``, ``str``, ``bytes``, and
  ``list`` / ``tuple`` / ``dict`` (``str`` keys) of those. Tuples come back as lists, as with
  JSON.
- ``0x03`` signed pickle: ``0x03 + key id (8 bytes) + Ed25519 signature (64) + pickle``.
  Writers sign with the private key, readers verify with the public key *before* unpickling
  (:mod:`shipyard.cache.signing` says where each key comes from). A value signed by any other
  key, tampered, or unsigned raises :class:`UntrustedValue` and is never unpickled.
- ``0x02`` is the old format, a pickle signed with a shared HMAC key that every reader held
  (and so could forge with): always refused, with the fix (``shipyard cache
  migrate-signatures`` re-signs such values with the private key).

Verifying costs one Ed25519 verification per pickled value fetched (about 0.1 ms on a loaded
2-core machine, against 6 µs for the old HMAC); msgpack values cost nothing more, and a
reader's ``lru`` keeps decoded values, verified once.
"""

from __future__ import annotations

import pickle
from typing import Any

import msgpack

from shipyard.cache import signing
from shipyard.cache.backends.base import CacheError

MSGPACK = b"\x01"
HMAC_PICKLE = b"\x02"
PICKLE = b"\x03"
_ID = signing.KEY_ID_BYTES
_SIGNATURE = 64
HEADER = 1 + _ID + _SIGNATURE
_SCALARS = frozenset({type(None), bool, int, float, str, bytes})


class UntrustedValue(CacheError):
    """A stored pickle that is unsigned, tampered, signed by another key or with the old HMAC
    key: refused, never unpickled."""


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
    """``value`` as tagged bytes (msgpack when it is plain data, else a signed pickle; that
    needs the private key)."""
    if _plain(value):
        try:
            packed: bytes = msgpack.packb(value, use_bin_type=True)
            return MSGPACK + packed
        except (OverflowError, ValueError):  # an int beyond 64 bits, a too-deep structure
            pass
    return sign(pickle.dumps(value, protocol=5))


def sign(payload: bytes, signer: signing.Signer | None = None) -> bytes:
    """The signed value of ``payload`` (a pickle), with the private key (``signer``'s, else
    this process's)."""
    signer = signer or signing.signer()
    return PICKLE + signer.key_id + signer.sign(payload) + payload


def signed_by(data: bytes) -> bytes | None:
    """The key id a signed pickle names (None for other formats)."""
    return data[1 : 1 + _ID] if data[:1] == PICKLE and len(data) >= HEADER else None


def decode(data: bytes, *, where: str = "") -> Any:
    """The value in ``data`` (as made by :func:`encode`). ``where`` (e.g. ``"namespace
    'home-rows', version 000003, key 'p1'"``) names the value in errors."""
    tag = data[:1]
    if tag == MSGPACK:
        return msgpack.unpackb(memoryview(data)[1:], raw=False)
    what = where or "a key"
    if tag == PICKLE:
        try:
            verifier = signing.verifier()
        except signing.SigningKeyError as exc:
            raise signing.SigningKeyError(
                f"cannot check the signature of the cached value of {what}: {exc}"
            ) from None
        key_id, signature = data[1 : 1 + _ID], data[1 + _ID : HEADER]
        if key_id != verifier.key_id:
            raise UntrustedValue(
                f"refusing to unpickle the cached value of {what}: it names signing key "
                f"{key_id.hex() or '(none)'}, and this process trusts only key "
                f"{verifier.key_id.hex()} ({verifier.source}); a value signed by any other key "
                "is refused (if the writers' key pair was replaced, give readers the new "
                f"public key, {signing.PUBLIC_FILE} or {signing.VERIFY_ENV}, and restart them)"
            )
        payload = data[HEADER:]
        if len(signature) != _SIGNATURE or not verifier.verify(signature, payload):
            raise UntrustedValue(
                f"refusing to unpickle the cached value of {what}: its signature does not "
                f"verify with key {verifier.key_id.hex()} ({verifier.source}): it was altered "
                "after it was signed"
            )
        return pickle.loads(payload)
    if tag == HMAC_PICKLE:
        raise UntrustedValue(
            f"refusing to unpickle the cached value of {what}: it is signed with the old "
            "shared HMAC key, which every reader held and so could forge with; re-sign the "
            "stored values once with `shipyard cache migrate-signatures`, run where the "
            "writers' private key is"
        )
    raise UntrustedValue(
        f"refusing the cached value of {what}: unknown format tag {tag!r} "
        "(not written by shipyard.cache; unsigned pickles are never loaded)"
    )
