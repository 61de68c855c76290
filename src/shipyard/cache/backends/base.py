"""The one narrow interface every cache backend implements (LMDB, Redis, replicated,
in-memory for tests). Keys and values are bytes here: encoding (msgpack / signed pickle)
and the reader's LRU live above, in ``shipyard.cache``.

A namespace holds versions. A version is written in full, then *published*: the namespace's
live pointer moves to it in one atomic step. Readers resolve the live version once and read
from it, so they always see one consistent version; a writer that dies before publishing
leaves the live version untouched (its partial version is garbage for ``drop``/gc).

Version ids are strings that sort in creation order (e.g. ``"000042"``); the backend assigns
them in ``begin``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class CacheError(Exception):
    """Root of the cache's errors."""


class BackendUnavailable(CacheError):
    """The backend cannot be reached now (connection refused, timeout). Readers fall back."""


@dataclass(frozen=True)
class VersionInfo:
    """One version of a namespace."""

    version: str
    created_at: float  # UNIX time the version was begun
    published_at: float | None  # None: not (yet) published
    keys: int  # number of keys written (as counted by the backend at publish)
    meta: dict[str, Any] = field(default_factory=dict)  # writer-supplied (run pathspec, ...)


class Backend(Protocol):
    """Every method may raise :class:`BackendUnavailable`; nothing else for I/O problems."""

    url: str  # as given, with any password masked

    def begin(self, namespace: str, meta: dict[str, Any], version: str | None = None) -> str:
        """Start a new (unpublished) version and return its id.

        ``version`` given: create exactly that id (the replicated backend keeps ids equal
        across regions this way); later ids are greater. Raise CacheError if it exists."""
        ...

    def put_many(self, namespace: str, version: str, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Write items into an unpublished version (idempotent: rewriting a key is fine).
        Returns how many were written."""
        ...

    def publish(
        self, namespace: str, version: str, meta: dict[str, Any] | None = None
    ) -> VersionInfo:
        """Atomically make ``version`` the live one; ``meta`` (if given) is merged into the
        version's meta in the same step (the replicated backend records a degraded publish
        this way). Publishing an already published version again is allowed."""
        ...

    def live(self, namespace: str) -> str | None:
        """The live version id, or None if the namespace has none. Cheap: readers call it
        to notice a newly published version."""
        ...

    def get_many(self, namespace: str, version: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in ``version`` (None where absent), in order."""
        ...

    def versions(self, namespace: str) -> list[VersionInfo]:
        """All versions, oldest first, published or not."""
        ...

    def set_live(self, namespace: str, version: str) -> None:
        """Point the namespace at an existing published version (rollback)."""
        ...

    def drop(self, namespace: str, version: str) -> None:
        """Delete a version's data (never the live one: raise CacheError)."""
        ...

    def namespaces(self) -> list[str]: ...

    def scan(self, namespace: str, version: str) -> Iterator[list[tuple[bytes, bytes]]]:
        """Every ``(key, value)`` of ``version``, published or not, in batches, in no set
        order (a key may come twice). For maintenance (re-signing values), not for readers."""
        ...

    def replace_values(
        self, namespace: str, version: str, changes: Iterable[tuple[bytes, bytes, bytes]]
    ) -> int:
        """For each ``(key, old, new)``, set ``key`` to ``new`` only where it still holds
        ``old`` (compare-and-set), in any version, published or not; keys are never added and
        counts never change. Returns how many were replaced. For maintenance only: readers of
        a published version see the new bytes at once, so ``new`` must hold the same value
        (re-signing it)."""
        ...

    def close(self) -> None: ...


def version_order(version: str) -> tuple[int, str]:
    """Sort key of version ids: numeric ids of any width, in creation order."""
    return (len(version), version)


def check_version_id(namespace: str, version: str) -> str:
    """``version`` if it is a valid id (digits, as ``begin`` makes them), else CacheError."""
    if not (version.isascii() and version.isdigit() and 0 < len(version) <= 18):
        raise CacheError(f"bad version id {version!r} for {namespace!r}: expected digits")
    return version
