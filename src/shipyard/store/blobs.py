"""Content-addressed blobs on a local directory (default) or S3.

Keys are lowercase hex SHA-256 digests chosen by the caller (see serialize.py). Nothing here
knows about flows. Two backends implement :class:`BlobStore`:

- ``file:///abs/dir`` (:class:`shipyard.store._local.LocalBlobStore`): ``dir/<key[:2]>/<key>``,
  written to a temp file in the same directory, fsynced, renamed, directory fsynced.
- ``s3://bucket/prefix`` (:class:`shipyard.store._s3.S3BlobStore`): ``prefix/<key[:2]>/<key>``;
  a single PUT or a multipart upload, both atomic on S3.

Errors: :class:`BlobNotFound` (a ``KeyError`` and a ``StoreError``) for a missing key;
``ValueError`` for a malformed key or URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from shipyard.store.errors import BlobNotFound as BlobNotFound  # re-exported: raised here

if TYPE_CHECKING:
    from shipyard.store.records import ArtifactRecord

_KEY = re.compile(r"[0-9a-f]{64}")


class BlobStore(Protocol):
    """One narrow interface; every backend implements exactly this."""

    url: str

    def put(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """Write the concatenated ``chunks`` under ``key`` durably and atomically unless the key
        exists already (dedup). Local: temp file in the same dir, write, fsync, rename, fsync
        dir. Returns True if written, False if it existed. Never leaves a partial blob visible
        under ``key``, even if the process is SIGKILLed mid-write."""
        ...

    def get(self, key: str) -> bytearray:
        """The whole blob, read into one preallocated (writable) buffer. Raises BlobNotFound."""
        ...

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (S3: a ranged GET); fewer at the end of the blob,
        ``b""`` past it. Raises BlobNotFound."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the blob; no error if absent."""
        ...

    def list(self) -> Iterator[tuple[str, float]]:
        """Every (key, modified-time as a UNIX timestamp); for gc."""
        ...


def check_key(key: object) -> str:
    """Return ``key`` if it is 64 lowercase hex characters, else raise ``ValueError``.

    Keys become file names and object names, so nothing else (``..``, ``/``) may get through.
    """
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(
            f"invalid blob key {key!r}: expected 64 lowercase hex characters (a SHA-256 digest)"
        )
    return key


def is_key(name: str) -> bool:
    """True if ``name`` is a well-formed blob key (used to skip temp files when listing)."""
    return _KEY.fullmatch(name) is not None


def check_range(start: int, length: int) -> None:
    """Reject negative offsets and lengths with a ``ValueError`` naming them."""
    if start < 0 or length < 0:
        raise ValueError(f"invalid blob range start={start!r} length={length!r}: both must be >= 0")


def keep_blob(store: BlobStore, record: ArtifactRecord) -> None:
    """Give a value kept inline in its row (``record.inline``) a blob of its own, for what
    must outlive the row: a model version points at blobs, and gc may delete the run."""
    if record.inline is not None:
        store.put(record.key, [record.inline])


def read_record(store: BlobStore, record: ArtifactRecord) -> bytes | bytearray:
    """The bytes of an artifact: the whole blob, or its range when several artifacts share
    one (a foreach's items). Raises BlobNotFound."""
    if record.offset is None:
        return store.get(record.key) if record.inline is None else record.inline
    return store.get_range(record.key, record.offset, record.length or 0)


def open_blob_store(url: str | None = None) -> BlobStore:
    """``file:///abs/dir`` (default: ``settings().store_url``) or ``s3://bucket/prefix``.
    S3 honours ``AWS_ENDPOINT_URL`` / ``SHIPYARD_S3_ENDPOINT_URL`` for S3-compatible servers.

    >>> store = open_blob_store("file:///tmp/blobs")
    """
    if url is None:
        from shipyard.config import settings

        url = settings().store_url
    if url.startswith("file://"):
        from shipyard.store._local import LocalBlobStore

        return LocalBlobStore.from_url(url)
    if url.startswith("s3://"):
        from shipyard.store._s3 import S3BlobStore

        return S3BlobStore.from_url(url)
    raise ValueError(
        f"unsupported blob store URL {url!r}: expected file:///absolute/dir or "
        "s3://bucket[/prefix] (set SHIPYARD_STORE_URL or store_url in config.yaml)"
    )
