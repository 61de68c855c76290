"""KeyStore: create, list, revoke and verify API keys kept in the metadata database.

A key reads ``sy_<prefix>_<secret>``: ``prefix`` is 12 random hex digits that find the row
and name the key in lists (not a secret); ``secret`` is ``secrets.token_urlsafe(32)``, 256
random bits. The plaintext is returned once by :meth:`KeyStore.create`; only its SHA-256 is
stored, and :meth:`KeyStore.verify` compares hashes with ``hmac.compare_digest``.

**Verification cache.** ``verify`` remembers each answer for ``cache_ttl`` seconds (default
5), so a busy host does not query the database per request. A key revoked through the same
``KeyStore`` stops working at once; a key revoked elsewhere (``shipyard keys revoke`` while a
host runs) stops working on that host within ``cache_ttl``. Expiry is checked on every call.

**Last use.** ``last_used_at`` is written at most once per ``touch_interval`` (60 s) per key
and process, by one background thread, never on the caller's path. Call :meth:`KeyStore.close`
(or :meth:`KeyStore.flush`) to wait for pending writes.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from shipyard.config import current_user
from shipyard.keys.errors import KeyInputError, KeyNotFound, KeysError
from shipyard.keys.records import KEY_MARK, KeyRecord
from shipyard.keys.scopes import parse_scopes
from shipyard.store.meta import MetaStore
from shipyard.store.schema import api_keys

#: seconds a verify() answer is reused: the bound on how late a revocation elsewhere bites
DEFAULT_CACHE_TTL = 5.0
#: seconds between two writes of one key's last_used_at (per process)
TOUCH_INTERVAL = 60.0
#: cached verify() answers kept at most (the oldest go first)
MAX_CACHED = 4096

_PREFIX_BYTES = 6  # 12 hex digits
_KEY = re.compile(r"sy_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_PREFIX_REF = re.compile(r"(?:sy_)?([0-9a-f]{12})")
_log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def hash_key(plaintext: str) -> str:
    """The SHA-256 of a key, as stored (64 hex digits)."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def shown_key(text: str) -> str:
    """``text`` as errors may show it: a key (or what may be one) cut to its public
    ``sy_<prefix>`` part, so its secret is never echoed back."""
    whole = _KEY.fullmatch(text)
    if whole is not None:
        return f"{KEY_MARK}{whole.group(1)}_…"
    if len(text) > 20:
        return text[:16] + "…"
    return text


def _record(row: Row[Any]) -> KeyRecord:
    return KeyRecord(
        key_id=int(row.key_id),
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _check_key_name(name: str) -> str:
    name = name.strip()
    if len(name) > 255 or any(ord(c) < 32 for c in name):
        raise KeyInputError(
            f"key name {name[:40]!r}... is not valid: use at most 255 printable characters"
        )
    return name


class KeyStore:
    """API keys in the metadata database.

    >>> keys = KeyStore(MetaStore.open())
    >>> record, plaintext = keys.create("ranker-client", ["invoke:ranker"])   # show it once
    >>> keys.verify(plaintext).allows("invoke:ranker")
    True

    ``clock`` (monotonic seconds) drives the cache and the last-use throttle; tests pass
    their own. The ``MetaStore`` stays the caller's: :meth:`close` does not close it.
    """

    def __init__(
        self,
        meta: MetaStore,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        touch_interval: float = TOUCH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.meta = meta
        self.cache_ttl = cache_ttl
        self.touch_interval = touch_interval
        self._clock = clock
        self._engine = meta.writer
        self._reader = meta.reader
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._scope_cache: dict[str, tuple[float, bool]] = {}
        self._touched: dict[int, float] = {}
        self._toucher: ThreadPoolExecutor | None = None

    # --- writing ----------------------------------------------------------------------
    def create(
        self,
        name: str,
        scopes: Iterable[str],
        expires: timedelta | None = None,
        created_by: str | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key: its record and its plaintext, which is never available again.

        ``scopes`` are validated (:func:`~shipyard.keys.scopes.parse_scope`); ``expires`` is
        a positive lifetime from now (None: never); ``created_by`` defaults to the user.
        """
        if isinstance(scopes, str):
            scopes = [scopes]
        scope_tuple = parse_scopes(scopes)
        name = _check_key_name(name)
        if expires is not None and expires <= timedelta(0):
            raise KeyInputError(f"expiry {expires} is not in the future: give a positive lifetime")
        now = _now()
        values: dict[str, Any] = {
            "name": name,
            "scopes": list(scope_tuple),
            "created_at": now,
            "created_by": created_by or current_user(),
            "expires_at": now + expires if expires is not None else None,
        }
        for _ in range(5):  # a prefix collision is a 1 in 2**48 event per existing key
            prefix = secrets.token_hex(_PREFIX_BYTES)
            plaintext = f"{KEY_MARK}{prefix}_{secrets.token_urlsafe(32)}"
            row = {**values, "prefix": prefix, "hash": hash_key(plaintext)}
            try:
                with self._engine.begin() as conn:
                    key_id = conn.execute(
                        api_keys.insert().values(row).returning(api_keys.c.key_id)
                    ).scalar_one()
            except sa.exc.IntegrityError:
                continue
            self._invalidate()
            record = KeyRecord(
                key_id=int(key_id),
                name=name,
                prefix=prefix,
                scopes=scope_tuple,
                created_at=now,
                created_by=row["created_by"],
                expires_at=row["expires_at"],
            )
            return record, plaintext
        raise KeysError(f"could not find an unused key prefix in {self.meta.url}; try again")

    def revoke(self, key: int | str) -> KeyRecord:
        """Revoke a key by id, prefix (``12ab...``, ``sy_12ab...``) or the key itself (what
        :meth:`create` returned; errors never repeat its secret); a revoked key stays
        revoked (its first revocation time is kept). Effective at once in this process,
        within ``cache_ttl`` in others. Raises :class:`KeyNotFound`."""
        where = self._where(key)
        with self._engine.begin() as conn:
            conn.execute(
                api_keys.update()
                .where(where, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            row = conn.execute(sa.select(api_keys).where(where)).first()
        self._invalidate()
        if row is None:
            raise self._not_found(key)
        return _record(row)

    def _where(self, key: int | str) -> sa.ColumnElement[bool]:
        if isinstance(key, int):
            return api_keys.c.key_id == key
        text = key.strip()
        if text.isdigit() and len(text) < 12:
            return api_keys.c.key_id == int(text)
        whole = _KEY.fullmatch(text)
        if whole is not None:  # the key itself, as `keys create` printed it
            return sa.and_(api_keys.c.prefix == whole.group(1), api_keys.c.hash == hash_key(text))
        match = _PREFIX_REF.fullmatch(text)
        if match is None:
            raise KeyInputError(
                f"{shown_key(text)!r} is neither a key id nor a key prefix (nor a whole key): use "
                "the id or the sy_... prefix that `shipyard keys list` shows, or the whole key"
            )
        return api_keys.c.prefix == match.group(1)

    def _not_found(self, key: int | str) -> KeyNotFound:
        text = str(key).strip()
        whole = _KEY.fullmatch(text)
        if whole is not None:
            return KeyNotFound(
                f"no key {shown_key(text)} in {self.meta.url} (its prefix is unknown, or the "
                f"rest of it does not match the key sy_{whole.group(1)}): `shipyard keys list "
                "--all` shows every key"
            )
        return KeyNotFound(
            f"no key with id or prefix {shown_key(text)!r} in {self.meta.url}: "
            "`shipyard keys list --all` shows every key"
        )

    # --- reading ----------------------------------------------------------------------
    def get(self, key: int | str) -> KeyRecord:
        """One key by id, prefix or the key itself, revoked or not. Raises
        :class:`KeyNotFound`."""
        with self._reader.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(self._where(key))).first()
        if row is None:
            raise self._not_found(key)
        return _record(row)

    def list(self, include_revoked: bool = False) -> builtins.list[KeyRecord]:
        """Every key, oldest first; revoked keys only with ``include_revoked``. Expired keys
        are listed (``expires_at`` tells)."""
        query = sa.select(api_keys).order_by(api_keys.c.key_id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self._reader.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def verify(self, plaintext: str) -> KeyRecord | None:
        """The key's record if ``plaintext`` is a known key that is neither revoked nor
        expired, else None. Malformed input never reaches the database."""
        if not isinstance(plaintext, str):
            return None
        match = _KEY.fullmatch(plaintext)
        if match is None:
            return None
        digest = hash_key(plaintext)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            record = cached[1]
        else:
            record = self._lookup(match.group(1), digest)
            with self._lock:
                self._cache.pop(digest, None)
                while len(self._cache) >= MAX_CACHED:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[digest] = (now + self.cache_ttl, record)
        if record is None or not record.is_active(_now()):
            return None
        self._touch(record)
        return record

    def _lookup(self, prefix: str, digest: str) -> KeyRecord | None:
        with self._reader.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.prefix == prefix)).first()
        if row is None:
            return None
        return _record(row) if hmac.compare_digest(row.hash, digest) else None

    def has_keys_with_scope_prefix(self, prefix: str) -> bool:
        """Whether any active key has a scope starting with ``prefix`` (``"invoke:"``,
        ``"route:"``, ``"ui"``). ``admin`` keys do not count: the admin token always exists.
        Cached like :meth:`verify`."""
        now = self._clock()
        with self._lock:
            cached = self._scope_cache.get(prefix)
        if cached is not None and cached[0] > now:
            return cached[1]
        wall = _now()
        query = sa.select(api_keys.c.scopes).where(
            api_keys.c.revoked_at.is_(None),
            sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > wall),
        )
        with self._reader.connect() as conn:
            found = any(
                scope.startswith(prefix)
                for scopes in conn.execute(query).scalars()
                for scope in scopes
            )
        with self._lock:
            self._scope_cache[prefix] = (now + self.cache_ttl, found)
        return found

    def _invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
            self._scope_cache.clear()

    # --- last use ---------------------------------------------------------------------
    def _touch(self, record: KeyRecord) -> None:
        now = self._clock()
        with self._lock:
            last = self._touched.get(record.key_id)
            if last is not None and now - last < self.touch_interval:
                return
            self._touched[record.key_id] = now
            seen = record.last_used_at
            if last is None and seen is not None:
                if (_now() - seen).total_seconds() < self.touch_interval:
                    return  # another process (or an earlier run) wrote it recently
            if self._toucher is None:
                self._toucher = ThreadPoolExecutor(1, thread_name_prefix="shipyard-keys")
            toucher = self._toucher
        toucher.submit(self._write_last_used, record.key_id, _now())

    def _write_last_used(self, key_id: int, at: datetime) -> None:
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    api_keys.update()
                    .where(
                        api_keys.c.key_id == key_id,
                        sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < at),
                    )
                    .values(last_used_at=at)
                )
        except Exception:  # a lost last-use time must never fail a request
            _log.warning("could not record the last use of key %s", key_id, exc_info=True)

    def flush(self) -> None:
        """Wait until every pending last-use write is done."""
        with self._lock:
            toucher = self._toucher
        if toucher is not None:
            toucher.submit(lambda: None).result()

    def close(self) -> None:
        """Finish pending last-use writes and stop the writer thread (not the MetaStore)."""
        with self._lock:
            toucher, self._toucher = self._toucher, None
        if toucher is not None:
            toucher.shutdown(wait=True)

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "DEFAULT_CACHE_TTL",
    "MAX_CACHED",
    "TOUCH_INTERVAL",
    "KeyStore",
    "hash_key",
]
