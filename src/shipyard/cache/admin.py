"""Managing namespaces: settings, rollback, garbage collection and status (what
``shipyard cache ls/show/rollback/gc`` print)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from shipyard.cache import metrics
from shipyard.cache.backends import open_backend, version_order
from shipyard.cache.backends.base import Backend, CacheError, VersionInfo
from shipyard.cache.namespaces import (
    SETTINGS_PREFIX,
    NamespaceSettings,
    check_keep,
    check_namespace,
    live_info,
    parse_max_age,
    prunable,
    read_settings,
    user_namespaces,
    write_settings,
)

log = logging.getLogger("shipyard.cache")

#: gc drops unpublished versions begun longer ago than this (crashed or abandoned writers)
UNPUBLISHED_GRACE_SECONDS = 3600.0


@dataclass(frozen=True)
class NamespaceStatus:
    """One namespace as ``shipyard cache ls`` shows it."""

    namespace: str
    settings: NamespaceSettings
    live: VersionInfo | None
    versions: list[VersionInfo] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return self.settings.is_stale(self.live)

    @property
    def age(self) -> float | None:
        if self.live is None:
            return None
        return time.time() - (self.live.published_at or self.live.created_at)


def _open(url: str | None, backend: Backend | None) -> Backend:
    return backend or open_backend(url)


def configure(
    namespace: str,
    *,
    keep: int | None = None,
    max_age: str | float | timedelta | None = None,
    url: str | None = None,
) -> NamespaceSettings:
    """Set how many versions ``namespace`` keeps and the age (``"6h"``, seconds, a timedelta;
    ``"off"`` to remove it) past which its live version is flagged stale. Arguments left as
    None keep their current value. Returns the new settings."""
    check_namespace(namespace)
    backend = open_backend(url)
    try:
        current = read_settings(backend, namespace)
        new = NamespaceSettings(
            keep=current.keep if keep is None else check_keep(keep),
            max_age=current.max_age if max_age is None else parse_max_age(max_age),
        )
        write_settings(backend, namespace, new)
        return new
    finally:
        backend.close()


def rollback(namespace: str, *, url: str | None = None) -> VersionInfo:
    """Make the published version before the live one live again; returns it."""
    check_namespace(namespace)
    backend = open_backend(url)
    try:
        live, versions = live_info(backend, namespace)
        if live is None:
            raise CacheError(f"cache namespace {namespace!r} has no live version to roll back")
        order = version_order(live.version)
        earlier = sorted(
            (
                v
                for v in versions
                if v.published_at is not None and version_order(v.version) < order
            ),
            key=lambda v: version_order(v.version),
        )
        if not earlier:
            raise CacheError(
                f"cache namespace {namespace!r}: no published version before the live one "
                f"({live.version}) is kept; `shipyard cache show {namespace}` lists them"
            )
        target = earlier[-1]
        backend.set_live(namespace, target.version)
        log.info("cache %s: rolled back from %s to %s", namespace, live.version, target.version)
        return target
    finally:
        backend.close()


def status(namespace: str, *, backend: Backend) -> NamespaceStatus:
    """The namespace's settings, live version and versions; sets the stale gauge."""
    live, versions = live_info(backend, namespace)
    result = NamespaceStatus(namespace, read_settings(backend, namespace), live, versions)
    metrics.STALE.labels(namespace).set(int(result.stale))
    if result.stale:
        log.warning(
            "cache %s: live version %s is stale (%.0f s old, max_age %.0f s)",
            namespace,
            live.version if live else None,
            result.age or 0,
            result.settings.max_age or 0,
        )
    return result


def statuses(*, backend: Backend) -> list[NamespaceStatus]:
    """:func:`status` of every namespace."""
    return [status(ns, backend=backend) for ns in user_namespaces(backend)]


def gc(
    *,
    url: str | None = None,
    backend: Backend | None = None,
    unpublished_after: float = UNPUBLISHED_GRACE_SECONDS,
    dry_run: bool = False,
) -> list[tuple[str, VersionInfo]]:
    """Drop unpublished versions begun more than ``unpublished_after`` seconds ago and
    published ones beyond each namespace's ``keep``. Returns what was (or would be) dropped."""
    backend = _open(url, backend)
    dropped: list[tuple[str, VersionInfo]] = []
    for namespace in backend.namespaces():
        if namespace.startswith(SETTINGS_PREFIX):
            continue  # settings namespaces keep their one live version
        keep = read_settings(backend, namespace).keep
        versions = backend.versions(namespace)
        live = backend.live(namespace)
        for info in prunable(versions, live, keep, unpublished_after=unpublished_after):
            if not dry_run:
                backend.drop(namespace, info.version)
            dropped.append((namespace, info))
    return dropped
