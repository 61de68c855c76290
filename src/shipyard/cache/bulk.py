"""Bulk scoring from a flow: a foreach over shards writes the parts of ONE version, a join
publishes it.

.. code-block:: python

    from shipyard import FlowSpec, cache, current, step

    class HomeRows(FlowSpec):
        @step
        def start(self):
            # begins one unpublished version; the handle is a small picklable artifact
            self.home_rows = cache.bulk("home-rows", meta={"run": current.pathspec})
            self.shards = list(range(8))
            self.next(self.score, foreach="shards")

        @step
        def score(self):
            with self.home_rows.part(self.input) as part:    # the shard's id
                part.put_many(rank_shard(self.input))        # a retry rewrites the same keys
            self.next(self.join)

        @step
        def join(self, inputs):
            self.merge_artifacts(inputs)
            self.version = self.home_rows.commit(parts=len(inputs))  # every part, or an error
            self.next(self.end)

How it survives failures:

- A part is complete once its ``with`` block exits cleanly: the part then writes its
  completion marker (a reserved key in the version), *after* its data. A shard that fails
  leaves no marker; its retry writes the same keys again (make a shard's output depend only
  on its id, so a retry overwrites everything the failed attempt wrote).
- ``commit(parts=...)`` checks every part's marker and refuses, naming the missing parts,
  before anything is published. ``parts=N`` means part ids ``0 .. N-1`` (the shard index, as
  above); pass the ids themselves (``parts=self.shards``) for other ids.
- ``resume`` reuses the ``start`` task and with it the handle, hence the same version; reused
  shard tasks already wrote their parts, so the resumed join publishes a complete version.
  ``commit`` of a version that is already published returns its info without publishing
  again (a retried join cannot roll the namespace back).
- A version never committed is dropped by ``shipyard cache gc`` an hour after it was begun.

Marker keys count in the version's key total (one per part).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgpack

from shipyard.cache.backends import mask, open_backend
from shipyard.cache.backends.base import Backend, CacheError, VersionInfo
from shipyard.cache.namespaces import RESERVED_KEY_PREFIX, check_keep, check_namespace
from shipyard.cache.writer import Items, Loader, publish

_MARKER = RESERVED_KEY_PREFIX + b"part\x00"


def _marker(part: Any) -> bytes:
    return _MARKER + str(part).encode()


class Part:
    """One shard's writes into a :class:`BulkVersion` (``put``, ``put_many``)."""

    def __init__(self, loader: Loader, part_id: str) -> None:
        self._loader = loader
        self.part_id = part_id

    @property
    def written(self) -> int:
        return self._loader.written

    def put(self, key: str, value: Any) -> None:
        self._loader.put(key, value)

    def put_many(self, items: Items, *, total: int | None = None) -> int:
        self._loader.flush()
        return self._loader.put_many(items, total=total)


@dataclass(frozen=True)
class BulkVersion:
    """A handle on one unpublished version, shared by the steps of a flow (it pickles to the
    namespace, the version id, the cache URL if one was given, and ``keep``)."""

    namespace: str
    version: str
    url: str | None = None
    keep: int | None = None

    def _backend(self) -> Backend:
        return open_backend(self.url)

    @contextmanager
    def part(self, part_id: Any) -> Iterator[Part]:
        """Write one part; it counts as finished only if the block exits without an error."""
        backend = self._backend()
        try:
            loader = Loader(backend, self.namespace, self.version)
            part = Part(loader, str(part_id))
            yield part
            loader.flush()
            done = {
                "keys": loader.written,
                "bytes": loader.bytes,
                "at": time.time(),
                "task": _task_pathspec(),
            }
            backend.put_many(
                self.namespace, self.version, [(_marker(part_id), msgpack.packb(done))]
            )
        finally:
            backend.close()

    def missing(self, parts: int | Iterable[Any]) -> list[str]:
        """The part ids among ``parts`` that have not finished."""
        return [p for p, done in self._finished(parts).items() if done is None]

    def _finished(self, parts: int | Iterable[Any]) -> dict[str, dict[str, Any] | None]:
        """Part id -> what its completion marker says (None: not finished)."""
        ids = [str(p) for p in (range(parts) if isinstance(parts, int) else parts)]
        backend = self._backend()
        try:
            found = backend.get_many(self.namespace, self.version, [_marker(p) for p in ids])
        finally:
            backend.close()
        return {
            p: None if raw is None else msgpack.unpackb(raw)
            for p, raw in zip(ids, found, strict=True)
        }

    def commit(self, parts: int | Iterable[Any]) -> VersionInfo:
        """Check that every part finished, then publish the version (idempotent)."""
        backend = self._backend()
        try:
            for info in backend.versions(self.namespace):
                if info.version == self.version and info.published_at is not None:
                    return info  # a retried or resumed join: already published
            finished = self._finished(parts)
            missing = [p for p, done in finished.items() if done is None]
            if missing:
                total = len(finished)
                raise CacheError(
                    f"cannot publish version {self.version} of cache namespace "
                    f"{self.namespace!r}: {len(missing)} of {total} parts did not finish "
                    f"(no completion marker): {', '.join(missing[:20])}"
                    f"{' ...' if len(missing) > 20 else ''}; re-run or resume the shard tasks"
                )
            size = sum(int(done.get("bytes", 0)) for done in finished.values() if done)
            return publish(backend, self.namespace, self.version, self.keep, size=size)
        finally:
            backend.close()

    def abort(self) -> None:
        """Drop the unpublished version."""
        backend = self._backend()
        try:
            backend.drop(self.namespace, self.version)
        finally:
            backend.close()

    def __repr__(self) -> str:
        where = f" in {mask(self.url)}" if self.url else ""
        return f"<cache.BulkVersion {self.namespace!r} version {self.version}{where}>"


def _task_pathspec() -> str | None:
    from shipyard.flow.current import current

    return current.pathspec if current.is_running_flow else None


def bulk(
    namespace: str,
    *,
    meta: dict[str, Any] | None = None,
    keep: int | None = None,
    url: str | None = None,
) -> BulkVersion:
    """Begin one version of ``namespace`` to be written in parts by several tasks (see the
    module docstring for the flow pattern). ``url`` is kept in the handle when given (so any
    password in it is stored with the artifact); otherwise every task uses its own
    ``SHIPYARD_CACHE_URL``."""
    check_namespace(namespace)
    if keep is not None:
        check_keep(keep)
    backend = open_backend(url)
    try:
        version = backend.begin(namespace, dict(meta or {}))
    finally:
        backend.close()
    return BulkVersion(namespace, version, url, keep)
