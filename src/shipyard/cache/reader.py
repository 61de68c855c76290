"""Reading the live version of a namespace: :func:`reader` and :class:`Reader`.

>>> rows = cache.reader("home-rows", lru=10_000)            # doctest: +SKIP
>>> rows.get("p1", default=POPULAR)                          # doctest: +SKIP

A reader resolves the live version at most every ``refresh_seconds`` (one cheap ``live()``
call) and reads only that version until the next check, so it sees one consistent version at
a time and picks up a newly published one without a restart. Its optional LRU holds decoded
values keyed by ``(version, key)``, so it can never serve a value of another version.

A lost backend never breaks a page: ``get`` returns the default (counted in
``shipyard_cache_defaults_served_total``) unless the reader is ``strict``. A tampered pickle is
always an error (:class:`~shipyard.cache.codec.UntrustedValue`), and so is a pickle signed with
the old shared HMAC key (the error names the namespace, version and key, and the fix: ``shipyard
cache migrate-signatures``). Readers need only the public key (:mod:`shipyard.cache.signing`).

Two clocks can be passed in (tests move them by hand instead of sleeping): ``clock``, monotonic,
times the refresh checks and settings re-reads; ``wall``, the time of day, dates the live
version against its ``max_age``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from shipyard.cache import codec, metrics
from shipyard.cache.backends import open_backend
from shipyard.cache.backends.base import Backend, BackendUnavailable, CacheError, VersionInfo
from shipyard.cache.namespaces import NamespaceSettings, check_namespace, encode_key, read_settings

log = logging.getLogger("shipyard.cache")

#: how often a reader re-reads its namespace's settings (max_age) and live version's info
SETTINGS_SECONDS = 60.0
_ABSENT: Any = object()


class Reader:
    """Reads one namespace; see :func:`reader`."""

    def __init__(
        self,
        namespace: str,
        *,
        lru: int = 0,
        refresh_seconds: float = 1.0,
        strict: bool = False,
        url: str | None = None,
        backend: Backend | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = check_namespace(namespace)
        if lru < 0 or refresh_seconds < 0:
            raise CacheError(f"lru and refresh_seconds must be >= 0, got {lru}, {refresh_seconds}")
        self.backend = backend or open_backend(url)
        self.strict = strict
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._wall = wall
        self._lru_size = lru
        self._lru: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._version: str | None = None
        self._due = float("-inf")  # when (on clock) the live version is next resolved
        self._unavailable: BackendUnavailable | None = None
        self._info: VersionInfo | None = None
        self._settings = NamespaceSettings()
        self._settings_at = float("-inf")
        self._stale = False
        self._reads = metrics.READS.labels(namespace)
        self._hits = metrics.HITS.labels(namespace)
        self._misses = metrics.MISSES.labels(namespace)

    # --- the live version ------------------------------------------------------------
    @property
    def version(self) -> str | None:
        """The live version this reader reads (None: nothing published yet, or unreachable)."""
        if self._clock() >= self._due:
            self._resolve()
        return self._version

    def refresh(self) -> str | None:
        """Re-resolve the live version now; returns it."""
        self._resolve()
        return self._version

    def _resolve(self) -> None:
        now = self._clock()
        self._due = now + self.refresh_seconds
        try:
            live = self.backend.live(self.namespace)
        except BackendUnavailable as exc:
            if self._unavailable is None:
                log.warning("cache %s: backend unavailable: %s", self.namespace, exc)
            self._unavailable = exc
            return
        self._unavailable = None
        if live != self._version:
            self._version = live
            self._lru.clear()
            self._settings_at = float("-inf")
        if now - self._settings_at >= SETTINGS_SECONDS:
            self._load_settings(now)
        self._check_freshness()

    def _load_settings(self, now: float) -> None:
        self._settings_at = now
        try:
            self._settings = read_settings(self.backend, self.namespace)
            if self._version is not None:
                versions = self.backend.versions(self.namespace)
                self._info = next((v for v in versions if v.version == self._version), None)
        except CacheError as exc:
            log.warning("cache %s: cannot read settings: %s", self.namespace, exc)

    def _check_freshness(self) -> None:
        info = self._info if self._version is not None else None
        if info is None or info.version != self._version:
            return
        now = self._wall()
        age = now - (info.published_at or info.created_at)
        metrics.LIVE_AGE.labels(self.namespace).set(age)
        stale = self._settings.is_stale(info, now=now)
        if stale != self._stale:
            self._stale = stale
            metrics.STALE.labels(self.namespace).set(int(stale))
            if stale:
                log.warning(
                    "cache %s: live version %s is stale: published %.0f s ago, max_age is "
                    "%.0f s (the pipeline that publishes it may be late or failing)",
                    self.namespace,
                    info.version,
                    age,
                    self._settings.max_age or 0,
                )

    # --- reads -----------------------------------------------------------------------
    def _fallback(self, count: int, reason: str, error: Exception | None = None) -> None:
        metrics.DEFAULTS.labels(self.namespace, reason).inc(count)
        if self.strict:
            if reason == "no_version":
                raise CacheError(
                    f"cache namespace {self.namespace!r} has no published version in "
                    f"{self.backend.url}: publish one with cache.writer()"
                )
            raise BackendUnavailable(
                f"cache {self.backend.url} is unavailable for {self.namespace!r}: {error}"
            )

    def _fetch(self, keys: list[bytes]) -> list[bytes | None] | None:
        """The raw values from the live version, or None if they cannot be had."""
        if self._clock() >= self._due:
            self._resolve()
        for attempt in (0, 1):
            version = self._version
            if version is None:
                if self._unavailable is not None:
                    self._fallback(len(keys), "unavailable", self._unavailable)
                else:
                    self._fallback(len(keys), "no_version")
                return None
            try:
                return self.backend.get_many(self.namespace, version, keys)
            except BackendUnavailable as exc:
                self._fallback(len(keys), "unavailable", exc)
                return None
            except CacheError:
                if attempt:  # the version vanished twice: something is wrong, say so
                    raise
                self._resolve()  # dropped under us (a rollback + gc): re-resolve once
        raise AssertionError("unreachable")

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` in the live version, or ``default`` if absent (or if the
        backend is unavailable and the reader is not strict)."""
        self._reads.inc()
        lru = self._lru_size
        if lru:
            if self._clock() >= self._due:
                self._resolve()
            try:
                value = self._lru[(self._version or "", key)]
            except KeyError:
                pass
            else:
                try:
                    self._lru.move_to_end((self._version or "", key))
                except KeyError:  # evicted by another thread meanwhile
                    pass
                if value is _ABSENT:
                    self._misses.inc()
                    return default
                self._hits.inc()
                return value
        raw_key = encode_key(self.namespace, key)
        version = self._version
        found = self._fetch([raw_key])
        if found is None:
            return default
        raw = found[0]
        value = _ABSENT if raw is None else self._decode(raw, key)
        if lru and version == self._version and version is not None:
            self._remember(version, key, value)
        if value is _ABSENT:
            self._misses.inc()
            return default
        self._hits.inc()
        return value

    def get_many(self, keys: Iterable[str], default: Any = _ABSENT) -> dict[str, Any]:
        """``{key: value}`` for the keys present; absent keys are left out, or mapped to
        ``default`` when one is given."""
        names = list(keys)
        self._reads.inc(len(names))
        raw_keys = [encode_key(self.namespace, k) for k in names]
        result: dict[str, Any] = {}
        found = self._fetch(raw_keys) if names else []
        if found is None:
            return {} if default is _ABSENT else dict.fromkeys(names, default)
        hits = 0
        for name, raw in zip(names, found, strict=True):
            if raw is not None:
                result[name] = self._decode(raw, name)
                hits += 1
            elif default is not _ABSENT:
                result[name] = default
        self._hits.inc(hits)
        self._misses.inc(len(names) - hits)
        return result

    def _decode(self, raw: bytes, key: str) -> Any:
        if raw[:1] == codec.MSGPACK:  # the common case, without building an error context
            return msgpack.unpackb(memoryview(raw)[1:], raw=False)
        where = f"namespace {self.namespace!r}, version {self._version}, key {key!r}"
        return codec.decode(raw, where=where)

    def _remember(self, version: str, key: str, value: Any) -> None:
        self._lru[(version, key)] = value
        if len(self._lru) > self._lru_size:
            try:
                self._lru.popitem(last=False)
            except KeyError:  # another thread emptied it
                pass

    def close(self) -> None:
        self.backend.close()

    def __repr__(self) -> str:
        return f"<cache.Reader {self.namespace!r} version {self._version}>"


def reader(
    namespace: str,
    *,
    lru: int = 0,
    refresh_seconds: float = 1.0,
    strict: bool = False,
    url: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> Reader:
    """A reader of ``namespace``'s live version.

    ``lru``: how many decoded values to keep in process (0: none); ``refresh_seconds``: how
    often to check for a newly published version; ``strict``: raise instead of returning the
    default when the backend is unavailable or nothing is published; ``url`` overrides
    ``SHIPYARD_CACHE_URL``; ``clock`` (monotonic: when to refresh) and ``wall`` (the time of
    day: how old the live version is) default to the real ones.
    """
    return Reader(
        namespace,
        lru=lru,
        refresh_seconds=refresh_seconds,
        strict=strict,
        url=url,
        clock=clock,
        wall=wall,
    )
