"""Writing a new version of a namespace: :func:`writer` and :class:`Writer`.

>>> with cache.writer("home-rows", meta={"model": "ranker:7"}) as w:   # doctest: +SKIP
...     w.put("p1", ["t3", "t9"])
...     w.put_many(rows, total=len(rows))        # a progress bar on a terminal
>>> # leaving the block without an error commits: the version is published atomically

Nothing is visible to readers before ``commit()``; an error inside the block, ``abort()`` or a
crashed process leaves the live version as it was (a crashed writer's partial version is
dropped by ``shipyard cache gc`` an hour later).
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from shipyard.cache import codec, metrics
from shipyard.cache.backends import open_backend
from shipyard.cache.backends.base import Backend, CacheError, VersionInfo
from shipyard.cache.namespaces import (
    check_keep,
    check_namespace,
    encode_key,
    prunable,
    read_settings,
)

log = logging.getLogger("shipyard.cache")

#: items encoded and handed to the backend at a time (bounds a bulk load's memory)
BATCH = 10_000

Items = Mapping[str, Any] | Iterable[tuple[str, Any]]


def publish(
    backend: Backend, namespace: str, version: str, keep: int | None, *, size: int | None = None
) -> VersionInfo:
    """Make ``version`` live, then drop versions beyond ``keep`` (default: the namespace's
    setting). Pruning problems are logged, never raised: the publish has happened.
    ``size``: the bytes of keys and values written, recorded as the version's
    ``meta["bytes"]`` (``cache show`` and the UI list it)."""
    settings = read_settings(backend, namespace)
    keep = settings.keep if keep is None else keep
    previous = backend.live(namespace)
    info = backend.publish(namespace, version, None if size is None else {"bytes": size})
    metrics.PUBLISHES.labels(namespace).inc()
    log.info("cache %s: published version %s (%d keys)", namespace, version, info.keys)
    announce(namespace, info)
    try:
        for old in prunable(backend.versions(namespace), version, keep, superseded=previous):
            backend.drop(namespace, old.version)
    except CacheError as exc:
        log.warning("cache %s: could not drop old versions after publishing: %s", namespace, exc)
    return info


def announce(namespace: str, info: VersionInfo) -> None:
    """Record the event ``cache.published`` (``{"namespace", "version", "keys", "meta"}``)
    in the metadata database, so ``@trigger(event="cache.published")`` flows fire. The
    cache is not in that database, so this follows the publish (it cannot share its
    transaction); a problem is logged, never raised: the publish has happened."""
    try:
        from shipyard.config import current_user
        from shipyard.store.context import default_stores
        from shipyard.store.events import publish_event

        payload = {
            "namespace": namespace,
            "version": info.version,
            "keys": info.keys,
            "meta": {k: v for k, v in info.meta.items() if isinstance(v, str | int | float)},
        }
        publish_event(
            default_stores().meta, "cache.published", payload, source="cache", user=current_user()
        )
    except Exception as exc:
        log.warning(
            "cache %s: published, but the event cache.published was not recorded: %s",
            namespace,
            exc,
        )


class Loader:
    """Encodes ``key -> value`` pairs and writes them to one version in batches."""

    def __init__(self, backend: Backend, namespace: str, version: str) -> None:
        self.backend, self.namespace, self.version = backend, namespace, version
        self.written = 0
        self.bytes = 0  # of keys and values, as stored
        self._buffer: list[tuple[bytes, bytes]] = []
        self._keys_written = metrics.KEYS_WRITTEN.labels(namespace)

    def _encode(self, key: str, value: Any) -> tuple[bytes, bytes]:
        try:
            return encode_key(self.namespace, key), codec.encode(value)
        except CacheError:
            raise
        except Exception as exc:  # an object pickle cannot handle, say
            raise CacheError(
                f"cannot store the value of key {key!r} in cache namespace "
                f"{self.namespace!r}: {type(exc).__name__}: {exc}"
            ) from exc

    def put(self, key: str, value: Any) -> None:
        self._buffer.append(self._encode(key, value))
        if len(self._buffer) >= BATCH:
            self.flush()

    def put_many(self, items: Items, *, total: int | None = None) -> int:
        iterator = iter_pairs(items)
        count = 0
        with _progress(self.namespace, total) as advance:
            while True:
                batch = [self._encode(k, v) for k, v in itertools.islice(iterator, BATCH)]
                if not batch:
                    return count
                self._write(batch)
                count += len(batch)
                advance(len(batch))

    def flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._write(batch)

    def _write(self, batch: list[tuple[bytes, bytes]]) -> None:
        self.backend.put_many(self.namespace, self.version, batch)
        self.written += len(batch)
        self.bytes += sum(len(key) + len(value) for key, value in batch)
        self._keys_written.inc(len(batch))


class _progress:
    """A rich progress bar on stderr, only on a terminal and when the total is known."""

    def __init__(self, namespace: str, total: int | None) -> None:
        self.namespace, self.total = namespace, total
        self._bar: Any = None

    def __enter__(self) -> Any:
        if self.total is None or not sys.stderr.isatty():
            return lambda n: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=False)
        self._bar.start()
        task = self._bar.add_task(f"cache {self.namespace}", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


class Writer:
    """Writes one new version of a namespace; see :func:`writer`."""

    def __init__(
        self,
        namespace: str,
        *,
        meta: dict[str, Any] | None = None,
        keep: int | None = None,
        url: str | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.namespace = check_namespace(namespace)
        self.keep = None if keep is None else check_keep(keep)
        self.backend = backend or open_backend(url)
        self.version = self.backend.begin(namespace, dict(meta or {}))
        self._loader = Loader(self.backend, namespace, self.version)
        self.info: VersionInfo | None = None
        self._aborted = False

    def _check_open(self) -> None:
        if self.info is not None or self._aborted:
            state = "committed" if self.info is not None else "aborted"
            raise CacheError(
                f"writer of {self.namespace!r} version {self.version} is already {state}: "
                "open a new one with cache.writer()"
            )

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` in the new version (buffered)."""
        self._check_open()
        self._loader.put(key, value)

    def put_many(self, items: Items, *, total: int | None = None) -> int:
        """Store a dict or pairs; ``total`` (the expected count) shows a progress bar on a
        terminal. Returns how many were written."""
        self._check_open()
        self._loader.flush()
        return self._loader.put_many(items, total=total)

    def commit(self) -> VersionInfo:
        """Publish the version atomically (it becomes live) and return its info."""
        if self.info is not None:
            return self.info
        self._check_open()
        self._loader.flush()
        self.info = publish(
            self.backend, self.namespace, self.version, self.keep, size=self._loader.bytes
        )
        return self.info

    def abort(self) -> None:
        """Drop the unpublished version; the live one is untouched."""
        if self.info is not None or self._aborted:
            return
        self._aborted = True
        try:
            self.backend.drop(self.namespace, self.version)
        except CacheError as exc:  # gc drops it later
            log.warning("cache %s: could not drop aborted version: %s", self.namespace, exc)

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            if not self._aborted:
                self.commit()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"<cache.Writer {self.namespace!r} version {self.version}>"


def writer(
    namespace: str,
    *,
    meta: dict[str, Any] | None = None,
    keep: int | None = None,
    url: str | None = None,
) -> Writer:
    """Begin a new version of ``namespace``.

    ``meta`` is stored with the version (``cache show`` lists it); ``keep`` overrides the
    namespace's number of versions kept (``cache.configure``, default 3) for this commit;
    ``url`` overrides ``SHIPYARD_CACHE_URL``. Used as a context manager, a clean exit commits
    and an exception aborts.
    """
    return Writer(namespace, meta=meta, keep=keep, url=url)


def iter_pairs(items: Items) -> Iterator[tuple[str, Any]]:
    """``(key, value)`` pairs of a mapping or an iterable of pairs."""
    if isinstance(items, Mapping):
        return iter(items.items())
    return iter(items)
