"""Who may sign the cache's pickles: one Ed25519 key pair.

Writers (``cache.writer``, ``cache.bulk`` parts, ``shipyard cache`` commands) sign with the
PRIVATE key; readers (services) verify with the PUBLIC key and never need the private one, so
a reader cannot sign a pickle that another reader would load.

======================  ===============================================================
the private key         ``SHIPYARD_CACHE_SIGNING_KEY``, else ``$SHIPYARD_HOME/cache.key``
(writers)               (PEM, PKCS#8, mode 0600; made with the pair by the first writer)
the public key          ``SHIPYARD_CACHE_VERIFY_KEY``, else the public half of
(readers)               ``SHIPYARD_CACHE_SIGNING_KEY`` when that is set, else
                        ``$SHIPYARD_HOME/cache.pub`` (PEM, SubjectPublicKeyInfo, mode 0644)
======================  ===============================================================

Both variables hold ``ed25519:`` followed by the raw 32-byte key in 64 hex digits (the
private seed, or the public key: ``shipyard cache keygen`` prints a pair, ``shipyard cache
public-key`` the public half of this machine's), or a PEM block (``openssl genpkey -algorithm
ed25519``, ``openssl pkey -pubout``). Readers never make or read the private key; a reader
with no public key gets :class:`SigningKeyError` naming where it looked and the fix.

The first writer makes the pair race-free: each file is written under a private temporary
name and hard-linked into place, which fails if the name exists, so two processes creating at
once end with one pair (the loser discards its key and loads the winner's).

A ``cache.key`` of 32 raw bytes is the old shared HMAC key: writers refuse it, and ``shipyard
cache migrate-signatures`` moves it to ``cache.hmac.key``, makes the pair in its place and
re-signs the stored values (:mod:`shipyard.cache.migration`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shipyard.cache.backends.base import CacheError

SIGNING_ENV = "SHIPYARD_CACHE_SIGNING_KEY"
VERIFY_ENV = "SHIPYARD_CACHE_VERIFY_KEY"
#: the old shared HMAC key, read only by the migration
HMAC_ENV = "SHIPYARD_CACHE_HMAC_KEY"
PRIVATE_FILE = "cache.key"
PUBLIC_FILE = "cache.pub"
HMAC_FILE = "cache.hmac.key"
KEY_ID_BYTES = 8
_PREFIX = "ed25519:"
_PEM = b"-----BEGIN"
_HMAC_BYTES = 32  # what the old cache.key held
_FORMATS = "'ed25519:' and 64 hex digits, or a PEM block"
_lock = threading.Lock()
_signers: dict[tuple[str, str, str], Signer] = {}
_verifiers: dict[tuple[str, str, str], Verifier] = {}


class SigningKeyError(CacheError):
    """A signing or verifying key that is missing, malformed, mismatched or of the old HMAC
    kind."""


def key_id(public: Ed25519PublicKey) -> bytes:
    """The first 8 bytes of the SHA-256 of the raw public key: stored with every signature,
    so that a value signed by another pair is named as such."""
    return hashlib.sha256(_raw_public(public)).digest()[:KEY_ID_BYTES]


@dataclass(frozen=True)
class Signer:
    """The private key and where it came from."""

    key: Ed25519PrivateKey
    key_id: bytes
    source: str

    def sign(self, payload: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``payload``."""
        return self.key.sign(payload)


@dataclass(frozen=True)
class Verifier:
    """The public key and where it came from."""

    key: Ed25519PublicKey
    key_id: bytes
    source: str

    def verify(self, signature: bytes, payload: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``payload``."""
        try:
            self.key.verify(signature, payload)
        except InvalidSignature:
            return False
        return True


def _cache_id() -> tuple[str, str, str]:
    env = os.environ
    return env.get(SIGNING_ENV, ""), env.get(VERIFY_ENV, ""), env.get("SHIPYARD_HOME", "~")


def _home() -> Path:
    from shipyard.config import home

    return home()


def signer() -> Signer:
    """The private key: ``SHIPYARD_CACHE_SIGNING_KEY``, else ``$SHIPYARD_HOME/cache.key``
    (the pair is made on first use)."""
    cache_id = _cache_id()
    found = _signers.get(cache_id)
    if found is not None:
        return found
    with _lock:
        signing_env, verify_env, _ = cache_id
        if signing_env:
            key = _parse_private(signing_env)
            source = SIGNING_ENV
        else:
            home = _home()
            # with the public key in the environment, a pair made here could not match it
            key = _private_from_home(home, create=not verify_env)
            source = str(home / PRIVATE_FILE)
        if verify_env:
            _check_pair(key, _parse_public(verify_env, VERIFY_ENV), source)
        found = _signers[cache_id] = Signer(key, key_id(key.public_key()), source)
        return found


def verifier() -> Verifier:
    """The public key: ``SHIPYARD_CACHE_VERIFY_KEY``, else the public half of
    ``SHIPYARD_CACHE_SIGNING_KEY``, else ``$SHIPYARD_HOME/cache.pub``. Never made here."""
    cache_id = _cache_id()
    found = _verifiers.get(cache_id)
    if found is not None:
        return found
    with _lock:
        signing_env, verify_env, _ = cache_id
        if verify_env:
            key = _parse_public(verify_env, VERIFY_ENV)
            source = VERIFY_ENV
            if signing_env:
                _check_pair(_parse_private(signing_env), key, SIGNING_ENV)
        elif signing_env:
            key = _parse_private(signing_env).public_key()
            source = f"the public half of {SIGNING_ENV}"
        else:
            path = _home() / PUBLIC_FILE
            key = _read_public(path)
            source = str(path)
        found = _verifiers[cache_id] = Verifier(key, key_id(key), source)
        return found


def generate() -> tuple[str, str]:
    """A new pair as ``(private, public)`` in the environment variables' ``ed25519:`` form
    (``shipyard cache keygen``); nothing is written anywhere."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return _PREFIX + seed.hex(), public_text(key.public_key())


def public_text(public: Ed25519PublicKey) -> str:
    """``public`` in the ``ed25519:`` form ``SHIPYARD_CACHE_VERIFY_KEY`` takes."""
    return _PREFIX + _raw_public(public).hex()


# --- parsing ---------------------------------------------------------------------------
def _raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _hex32(text: str, where: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SigningKeyError(
            f"{where} is not an Ed25519 {what} key: after 'ed25519:' it needs 64 hex digits "
            "(32 bytes)"
        )
    return raw


def _parse_private(text: str) -> Ed25519PrivateKey:
    """The private key in ``SHIPYARD_CACHE_SIGNING_KEY`` (its value is never shown)."""
    text = text.strip()
    if text.startswith(_PREFIX):
        return Ed25519PrivateKey.from_private_bytes(
            _hex32(text[len(_PREFIX) :], SIGNING_ENV, "private")
        )
    if text.encode().startswith(_PEM):
        return _load_private_pem(text.encode(), SIGNING_ENV)
    raise SigningKeyError(
        f"{SIGNING_ENV} is not an Ed25519 private key ({_FORMATS}); it looks like the old "
        "shared HMAC key, which every reader held and so could forge with. Move its value to "
        f"{HMAC_ENV}, set {SIGNING_ENV} to a private key from `shipyard cache keygen` (and "
        f"{VERIFY_ENV} to its public half on readers), then run `shipyard cache "
        "migrate-signatures` once to re-sign the stored values"
    )


def _parse_public(text: str, where: str) -> Ed25519PublicKey:
    text = text.strip()
    if text.startswith(_PREFIX):
        return Ed25519PublicKey.from_public_bytes(_hex32(text[len(_PREFIX) :], where, "public"))
    if text.encode().startswith(_PEM):
        return _load_public_pem(text.encode(), where)
    raise SigningKeyError(
        f"{where} is not an Ed25519 public key: use {_FORMATS} (`shipyard cache public-key` "
        "prints it on a machine with the private key)"
    )


def _load_private_pem(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(
            f"{where} is not a readable unencrypted PEM private key: {exc}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{where} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _load_public_pem(data: bytes, where: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{where} is not a readable PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{where} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _check_pair(private: Ed25519PrivateKey, public: Ed25519PublicKey, source: str) -> None:
    if _raw_public(private.public_key()) != _raw_public(public):
        raise SigningKeyError(
            f"{VERIFY_ENV} is not the public half of the private key in {source}: this "
            f"process would refuse what it signs; set {VERIFY_ENV} to what `shipyard cache "
            "public-key` prints with that private key, or unset it"
        )


def is_hmac_key(data: bytes) -> bool:
    """Whether a ``cache.key``'s bytes are the old 32-byte HMAC key."""
    return len(data) == _HMAC_BYTES and not data.startswith(_PEM)


# --- the files ---------------------------------------------------------------------------
def _private_from_home(home: Path, *, create: bool = True) -> Ed25519PrivateKey:
    path = home / PRIVATE_FILE
    public_path = home / PUBLIC_FILE
    if not path.exists():
        if public_path.exists() or not create:  # given only the public key: a reader
            raise SigningKeyError(_reader_only(path, f"{path} does not exist"))
        fresh = Ed25519PrivateKey.generate()
        pem = fresh.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _link_new(path, pem, 0o600)  # False: another process made it first; use theirs
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(_reader_only(path, f"cannot read {path}: {exc.strerror}")) from None
    if not data.strip():
        raise SigningKeyError(_reader_only(path, f"{path} is empty (hidden from this process?)"))
    if is_hmac_key(data):
        raise SigningKeyError(
            f"{path} holds the old shared HMAC key, which every reader held and so could "
            "forge with; cache pickles are now signed with an Ed25519 key pair: run `shipyard "
            "cache migrate-signatures` once (it moves the old key to "
            f"{home / HMAC_FILE}, makes the pair and re-signs the stored values)"
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SigningKeyError(
            f"{path} (the cache's private signing key) is readable by others (mode "
            f"{mode:04o}): `chmod 600 {path}`, and consider it leaked if others could log in"
        )
    key = _load_private_pem(data, str(path))
    _ensure_public(public_path, key.public_key(), path)
    return key


def _reader_only(path: Path, why: str) -> str:
    return (
        f"cannot sign a cache pickle here: {why}. Only writers hold the private key; this "
        f"process can read signed values with the public key ({path.with_name(PUBLIC_FILE)} "
        f"or {VERIFY_ENV}) but not write pickles (plain data needs no key): write from where "
        "the private key is, or give "
        f"this process {SIGNING_ENV} or {path} (mode 0600) if it is meant to write"
    )


def _ensure_public(path: Path, public: Ed25519PublicKey, private_path: Path) -> None:
    """Write ``cache.pub`` if it is missing; refuse one that is not ``public``."""
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not path.exists() and _link_new(path, pem, 0o644):
        return
    if _raw_public(_read_public(path)) != _raw_public(public):
        raise SigningKeyError(
            f"{path} is not the public half of {private_path}: readers would refuse what "
            f"writers sign; delete {path} (the next writer rewrites it from the private key) "
            "or restore the matching pair"
        )


def _read_public(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(
            f"no public key to verify signed cache values with: neither {VERIFY_ENV} nor "
            f"{path} exists (writers sign with {SIGNING_ENV} or "
            f"{path.with_name(PRIVATE_FILE)}). The first writer on a machine makes the pair; "
            f"on a machine that only reads, copy {PUBLIC_FILE} from the writers' "
            f"SHIPYARD_HOME, or set {VERIFY_ENV} to what `shipyard cache public-key` prints "
            "there; after upgrading from HMAC signatures, run `shipyard cache "
            "migrate-signatures` once"
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read the cache's public key {path}: {exc}") from None
    return _load_public_pem(data, str(path))


def _link_new(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` holding ``data`` with exactly ``mode``, atomically: False if it
    exists (then it is left as it is)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # exactly, whatever the umask
        with os.fdopen(os.dup(fd), "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


@contextmanager
def _home_lock(home: Path) -> Iterator[None]:
    """Serialize the migration's move of the old key between processes."""
    fd = os.open(home / ".cache.key.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def hmac_key(path: Path | None = None) -> tuple[bytes, str] | None:
    """The old shared HMAC key, for the migration only, and where it was found: ``path`` if
    given, else ``SHIPYARD_CACHE_HMAC_KEY``, else ``cache.key`` if it still holds it (moved
    to ``cache.hmac.key`` first, so that the Ed25519 pair can take its place), else
    ``cache.hmac.key``. None when there is none."""
    if path is not None:
        return _hmac_from_file(path), str(path)
    env = os.environ.get(HMAC_ENV, "")
    if env:
        if len(env) < 32:
            raise SigningKeyError(
                f"{HMAC_ENV} is too short ({len(env)} characters) to be the old HMAC key (the "
                f"old {SIGNING_ENV} had 32 or more)"
            )
        return env.encode(), HMAC_ENV
    home = _home()
    current, retired = home / PRIVATE_FILE, home / HMAC_FILE
    with _home_lock(home):
        try:
            data = current.read_bytes()
        except FileNotFoundError:
            data = b""
        if is_hmac_key(data):
            try:
                os.link(current, retired)
            except FileExistsError:
                if retired.read_bytes() != data:
                    raise SigningKeyError(
                        f"{current} and {retired} hold two different old HMAC keys: keep the "
                        "one the cache was written with as "
                        f"{retired}, delete the other, and run again"
                    ) from None
            current.unlink()
    if retired.exists():
        return _hmac_from_file(retired), str(retired)
    return None


def retired_hmac_key() -> Path:
    """Where the migration keeps the old HMAC key it moved out of ``cache.key``."""
    return _home() / HMAC_FILE


def _hmac_from_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the old HMAC key {path}: {exc}") from None
    if len(data) == _HMAC_BYTES:
        return data  # the old cache.key: raw bytes
    text = data.strip()  # the old SHIPYARD_CACHE_SIGNING_KEY, saved to a file
    if len(text) < 32:
        raise SigningKeyError(
            f"{path} is not an old HMAC key: expected the old cache.key's 32 bytes or the old "
            f"{SIGNING_ENV} string (32 characters or more)"
        )
    return text
