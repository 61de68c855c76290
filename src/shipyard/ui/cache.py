"""The cache pages: every namespace with its live version, age, keys, versions kept and the
stale flag, and one namespace's versions (keys, size when the writer recorded one, created
and published times, the writer's metadata).

The backend is ``settings().cache_url`` (``SHIPYARD_CACHE_URL``), opened per request (LMDB
environments are shared per process; Redis connects lazily). A cache that cannot be reached
is a note on the page, not an error. An LMDB cache that was never written is not created.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from shipyard.cache.admin import NamespaceStatus
from shipyard.cache.backends import open_backend
from shipyard.cache.backends.base import Backend, CacheError
from shipyard.cache.namespaces import InvalidName, check_namespace, live_info, read_settings
from shipyard.ui.context import PageError, PageNotFound, UIContext

#: version metadata keys that may hold the version's size in bytes
SIZE_KEYS = ("bytes", "size_bytes", "size")


class CacheUnavailable(PageError):
    """The cache backend cannot be reached (503)."""

    status = 503


def cache_url() -> str:
    from shipyard.config import settings

    return settings().cache_url


def _missing_lmdb(url: str) -> bool:
    """An ``lmdb://`` cache whose directory does not exist (opening would create it)."""
    return url.startswith("lmdb://") and "," not in url and not Path(url[7:]).expanduser().exists()


@contextmanager
def _backend(url: str) -> Iterator[Backend | None]:
    if _missing_lmdb(url):
        yield None
        return
    backend = open_backend(url)
    try:
        yield backend
    finally:
        backend.close()


def namespace_status(backend: Backend, namespace: str) -> NamespaceStatus:
    """What :func:`shipyard.cache.admin.status` returns, without its side effects (a stale
    warning in the log and a gauge update on every page view)."""
    live, versions = live_info(backend, namespace)
    return NamespaceStatus(namespace, read_settings(backend, namespace), live, versions)


def version_size(meta: dict[str, object]) -> int | None:
    """The size the writer recorded in the version's metadata, if any."""
    for key in SIZE_KEYS:
        value = meta.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def cache_page(ctx: UIContext, request: Request) -> Response:
    url = cache_url()
    rows: list[NamespaceStatus] = []
    problem = None
    try:
        with _backend(url) as backend:
            if backend is not None:
                names = sorted(n for n in backend.namespaces() if not n.startswith("_"))
                rows = [namespace_status(backend, name) for name in names]
    except CacheError as exc:
        problem = str(exc)
    return ctx.render(
        request,
        "cache.html",
        title="Cache",
        nav="cache",
        rows=rows,
        problem=problem,
        cache_url=_masked(url),
        now=time.time(),
    )


def namespace_page(ctx: UIContext, request: Request) -> Response:
    name = request.path_params["namespace"]
    try:
        check_namespace(name)
    except InvalidName as exc:
        raise PageNotFound(f"cache namespace {name!r} does not exist: {exc}") from None
    url = cache_url()
    try:
        with _backend(url) as backend:
            if backend is None or name not in backend.namespaces():
                raise PageNotFound(f"cache namespace {name!r} does not exist in {_masked(url)}")
            found = namespace_status(backend, name)
    except CacheError as exc:
        raise CacheUnavailable(f"the cache at {_masked(url)} cannot be read: {exc}") from None
    return ctx.render(
        request,
        "cache_namespace.html",
        title=f"Cache {name}",
        nav="cache",
        ns=found,
        versions=list(reversed(found.versions)),  # newest first
        sizes={v.version: version_size(v.meta) for v in found.versions},
        now=time.time(),
    )


def _masked(url: str) -> str:
    from shipyard.cache.backends import mask

    return mask(url)


__all__ = [
    "SIZE_KEYS",
    "CacheUnavailable",
    "cache_page",
    "cache_url",
    "namespace_page",
    "version_size",
]
