"""Artifacts inside a running task: lazy loading of what the task inherits, persisting what
the step assigned, and the foreach item blob.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from shipyard.store import files
from shipyard.store.blobs import BlobStore, read_record
from shipyard.store.records import ArtifactRecord
from shipyard.store.serialize import decode, encode

_NOT_LOADED: Any = object()


def load_record(store: BlobStore, record: ArtifactRecord) -> Any:
    """Read and decode one artifact (a range of a blob when the record says so)."""
    return files.bind(decode(read_record(store, record)), store)


#: values whose encoding is at most this many bytes are kept in their metadata row: no blob
#: file, fsync and rename for a counter or a score, and as durable as the row itself
INLINE_MAX = 1024


def save(store: BlobStore, name: str, value: Any) -> ArtifactRecord:
    """Encode and write one value (deduplicated by content; a small one inline, see
    :data:`INLINE_MAX`). A :class:`~shipyard.store.files.Files` writes its files first, and
    its manifest always gets a blob (gc reads manifests from the store). Raises
    ArtifactNotPicklable, FilesError."""
    if isinstance(value, files.Files):
        files.upload(store, value, name=name)
    enc = encode(value, name=name)
    small = sum(memoryview(c).nbytes for c in enc.chunks) <= INLINE_MAX
    if small and enc.encoding != files.ENCODING:
        return enc.record(name, inline=b"".join(enc.chunks))
    store.put(enc.key, enc.chunks)
    return enc.record(name)


class ArtifactLoader(Mapping[str, ArtifactRecord]):
    """Name -> record, loading each value at most once, on first use."""

    def __init__(self, store: BlobStore, records: Mapping[str, ArtifactRecord]) -> None:
        self._store = store
        self._records = dict(records)
        self._values: dict[str, Any] = {}

    def __getitem__(self, name: str) -> ArtifactRecord:
        return self._records[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: ArtifactRecord) -> None:
        self._records[record.name] = record
        self._values.pop(record.name, None)

    def load(self, name: str) -> Any:
        value = self._values.get(name, _NOT_LOADED)
        if value is _NOT_LOADED:
            value = self._values[name] = load_record(self._store, self._records[name])
        return value


def save_items(store: BlobStore, name: str, items: Iterable[Any]) -> list[ArtifactRecord]:
    """Write the items of a foreach as ONE blob of independently decodable parts, so that
    each foreach task reads only its own item (a ranged read), and a 1,000-way foreach costs
    one file, not a thousand."""
    encoded = [encode(item, name=f"{name}[{i}]") for i, item in enumerate(items)]
    digest = hashlib.sha256()
    chunks: list[bytes | memoryview] = []
    spans: list[tuple[int, int]] = []
    offset = 0
    for enc in encoded:
        length = 0
        for chunk in enc.chunks:
            digest.update(chunk)
            chunks.append(chunk)
            length += memoryview(chunk).nbytes
        spans.append((offset, length))
        offset += length
    key = digest.hexdigest()
    store.put(key, chunks)
    return [
        ArtifactRecord(
            name=f"{name}[{i}]",
            key=key,
            size=enc.size,
            encoding=enc.encoding,
            type_name=enc.type_name,
            preview=enc.preview,
            offset=start,
            length=length,
        )
        for i, (enc, (start, length)) in enumerate(zip(encoded, spans, strict=True))
    ]
