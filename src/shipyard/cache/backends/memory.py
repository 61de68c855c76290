"""``memory://NAME``: a process-local backend for tests, with the same semantics as the others.

Every ``MemoryBackend("memory://x")`` in a process shares the store named ``x``.
:func:`set_available` simulates an outage (every call raises :class:`BackendUnavailable`), the
way httpx's ``MockTransport`` stands in for a network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shipyard.cache.backends.base import (
    BackendUnavailable,
    CacheError,
    VersionInfo,
    check_version_id,
    version_order,
)


@dataclass
class _Namespace:
    seq: int = 0
    live: str | None = None
    versions: dict[str, VersionInfo] = field(default_factory=dict)
    data: dict[str, dict[bytes, bytes]] = field(default_factory=dict)


@dataclass
class _Store:
    namespaces: dict[str, _Namespace] = field(default_factory=dict)
    available: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


_stores: dict[str, _Store] = {}
_stores_lock = threading.Lock()


def _store(name: str) -> _Store:
    with _stores_lock:
        return _stores.setdefault(name, _Store())


def set_available(name: str, available: bool) -> None:
    """Make the store ``name`` (un)reachable, to test fallbacks."""
    _store(name).available = available


def reset(name: str | None = None) -> None:
    """Forget the store ``name`` (or all of them)."""
    with _stores_lock:
        if name is None:
            _stores.clear()
        else:
            _stores.pop(name, None)


def wipe(name: str) -> None:
    """Empty the store ``name`` in place, as a server restarted without persistence comes
    back: backends already open on it see it empty (to test recovery)."""
    store = _store(name)
    with store.lock:
        store.namespaces.clear()


class MemoryBackend:
    """Versions of namespaces in this process's memory."""

    def __init__(self, url: str) -> None:
        if not url.startswith("memory://") or not url[len("memory://") :]:
            raise CacheError(f"bad memory cache URL {url!r}: use memory://NAME")
        self.url = url
        self.name = url[len("memory://") :]
        self._store = _store(self.name)

    def _ns(self, namespace: str, *, create: bool = False) -> _Namespace:
        if not self._store.available:
            raise BackendUnavailable(f"cache {self.url} is unavailable (set_available(False))")
        ns = self._store.namespaces.get(namespace)
        if ns is None:
            if not create:
                raise CacheError(f"cache namespace {namespace!r} has no versions in {self.url}")
            ns = self._store.namespaces[namespace] = _Namespace()
        return ns

    def _version(self, namespace: str, version: str) -> tuple[_Namespace, VersionInfo]:
        ns = self._ns(namespace)
        info = ns.versions.get(version)
        if info is None:
            raise CacheError(f"version {version!r} of cache namespace {namespace!r} not found")
        return ns, info

    def begin(self, namespace: str, meta: dict[str, Any], version: str | None = None) -> str:
        with self._store.lock:
            ns = self._ns(namespace, create=True)
            if version is None:
                ns.seq += 1
                version = f"{ns.seq:06d}"
            else:
                check_version_id(namespace, version)
                if version in ns.versions:
                    raise CacheError(f"version {version} of {namespace!r} exists already")
                ns.seq = max(ns.seq, int(version))
            ns.versions[version] = VersionInfo(version, time.time(), None, 0, dict(meta))
            ns.data[version] = {}
            return version

    def put_many(self, namespace: str, version: str, items: Iterable[tuple[bytes, bytes]]) -> int:
        with self._store.lock:
            ns, info = self._version(namespace, version)
            if info.published_at is not None:
                raise CacheError(f"version {version} of {namespace!r} is published: read-only")
            data = ns.data[version]
            count = 0
            for key, value in items:
                data[bytes(key)] = bytes(value)
                count += 1
            return count

    def publish(
        self, namespace: str, version: str, meta: dict[str, Any] | None = None
    ) -> VersionInfo:
        with self._store.lock:
            ns, info = self._version(namespace, version)
            if info.published_at is None:
                info = replace(info, published_at=time.time(), keys=len(ns.data[version]))
            if meta:
                info = replace(info, meta={**info.meta, **meta})
            ns.versions[version] = info
            ns.live = version
            return info

    def live(self, namespace: str) -> str | None:
        if not self._store.available:
            raise BackendUnavailable(f"cache {self.url} is unavailable (set_available(False))")
        ns = self._store.namespaces.get(namespace)
        return None if ns is None else ns.live

    def get_many(self, namespace: str, version: str, keys: Sequence[bytes]) -> list[bytes | None]:
        ns = self._ns(namespace)
        data = ns.data.get(version)
        if data is None:
            raise CacheError(f"version {version!r} of cache namespace {namespace!r} not found")
        return [data.get(bytes(k)) for k in keys]

    def versions(self, namespace: str) -> list[VersionInfo]:
        with self._store.lock:
            ns = self._store.namespaces.get(namespace)
            if not self._store.available:
                raise BackendUnavailable(f"cache {self.url} is unavailable")
            if ns is None:
                return []
            infos = [
                v if v.published_at is not None else replace(v, keys=len(ns.data[v.version]))
                for v in ns.versions.values()
            ]
            return sorted(infos, key=lambda v: version_order(v.version))

    def set_live(self, namespace: str, version: str) -> None:
        with self._store.lock:
            ns, info = self._version(namespace, version)
            if info.published_at is None:
                raise CacheError(
                    f"version {version} of {namespace!r} was never published: it may be "
                    "incomplete, so it cannot be made live"
                )
            ns.live = version

    def drop(self, namespace: str, version: str) -> None:
        with self._store.lock:
            ns, _ = self._version(namespace, version)
            if ns.live == version:
                raise CacheError(f"version {version} of {namespace!r} is live: not dropping it")
            del ns.versions[version], ns.data[version]

    def scan(self, namespace: str, version: str) -> Iterator[list[tuple[bytes, bytes]]]:
        with self._store.lock:
            ns, _ = self._version(namespace, version)
            items = list(ns.data[version].items())
        for start in range(0, len(items), 1000):
            yield items[start : start + 1000]

    def replace_values(
        self, namespace: str, version: str, changes: Iterable[tuple[bytes, bytes, bytes]]
    ) -> int:
        with self._store.lock:
            ns, _ = self._version(namespace, version)
            data = ns.data[version]
            replaced = 0
            for key, old, new in changes:
                if data.get(key) == old:
                    data[key] = bytes(new)
                    replaced += 1
            return replaced

    def namespaces(self) -> list[str]:
        if not self._store.available:
            raise BackendUnavailable(f"cache {self.url} is unavailable")
        return sorted(self._store.namespaces)

    def close(self) -> None:
        pass
