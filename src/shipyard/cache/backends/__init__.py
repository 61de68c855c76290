"""Cache backends behind one narrow interface (:class:`~shipyard.cache.backends.base.Backend`),
and :func:`open_backend`, which picks one from a URL:

=================================  ================================================
``lmdb:///path`` (the default,     embedded, under ``$SHIPYARD_HOME/cache``
``settings().cache_url``)
``memory://name``                  process-local, for tests
``redis://...``, ``rediss://...``  a Redis / Valkey server
``URL1,URL2,...``                  replicated: writes to all, reads from the first
                                   that answers within ``read_deadline_ms``
=================================  ================================================

Backends for servers are imported only when a URL needs them.
"""

from __future__ import annotations

from shipyard.cache.backends.base import (
    Backend,
    BackendUnavailable,
    CacheError,
    VersionInfo,
    check_version_id,
    version_order,
)

DEFAULT_READ_DEADLINE_MS = 20.0

__all__ = [
    "Backend",
    "BackendUnavailable",
    "CacheError",
    "DEFAULT_READ_DEADLINE_MS",
    "VersionInfo",
    "check_version_id",
    "mask",
    "open_backend",
    "version_order",
]


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and listings)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def open_backend(
    url: str | None = None, *, read_deadline_ms: float = DEFAULT_READ_DEADLINE_MS
) -> Backend:
    """The backend for ``url`` (default: ``SHIPYARD_CACHE_URL`` / ``settings().cache_url``)."""
    if url is None:
        from shipyard.config import settings

        url = settings().cache_url
    url = url.strip()
    if "," in url:
        from shipyard.cache.backends.replicated import ReplicatedBackend

        parts = [part.strip() for part in url.split(",")]
        if any(not part or "," in part for part in parts):
            raise CacheError(f"bad replicated cache URL {mask(url)!r}: an empty entry")
        return ReplicatedBackend(
            [open_backend(part) for part in parts], read_deadline_ms=read_deadline_ms
        )
    scheme = url.partition("://")[0]
    if scheme == "lmdb":
        from shipyard.cache.backends.lmdb import LmdbBackend

        return LmdbBackend(url)
    if scheme == "memory":
        from shipyard.cache.backends.memory import MemoryBackend

        return MemoryBackend(url)
    if scheme in ("redis", "rediss"):
        from shipyard.cache.backends.redis import RedisBackend

        return RedisBackend(url)
    raise CacheError(
        f"unknown cache URL {mask(url)!r}: use lmdb:///path, redis://host:port/db, "
        "rediss://..., memory://name, or a comma-separated list of these for replicas"
    )
