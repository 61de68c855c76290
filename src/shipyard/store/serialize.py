"""Artifact serialization: pickle protocol 5, zstd when it pays, previews at write time.

A blob is a 16-byte envelope followed by the payload, raw or as one zstd frame::

    envelope  b"SHPB" | version u8 | encoding u8 (0 pickle5, 1 pickle5+zstd, 2 files) | 0 u16
              | payload size u64
    payload   b"SHPP" | buffer count u32 | pickle size u64 | buffer sizes u64 each
              | pickle bytes | (zero pad to a multiple of 64 | buffer)*

Large buffers (numpy arrays, pandas blocks) travel out of band (``buffer_callback``), so they
are hashed, written and read without being copied into the pickle; each one starts 64-byte
aligned. The key is the SHA-256 of the payload, so it does not depend on compression.

A :class:`~shipyard.store.files.Files` is encoded as its manifest (encoding 2, ``files``):
the payload is the manifest's canonical JSON, so the key is the tree's digest.

Importing this module stays cheap: no numpy, pandas or zstandard until an object needs them.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import reprlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shipyard.store.errors import ArtifactNotPicklable as ArtifactNotPicklable  # re-exported
from shipyard.store.records import ArtifactRecord

_MAGIC = b"SHPB"
_PAYLOAD_MAGIC = b"SHPP"
_VERSION = 1
_ENVELOPE = struct.Struct("<4sBBHQ")
_PAYLOAD_HEAD = struct.Struct("<4sIQ")
_ALIGN = 64
_ENCODINGS = ("pickle5", "pickle5+zstd", "files")
#: the encoding byte of a file artifact's manifest (see files.py): the payload is its JSON
_FILES = 2

#: compress only if a sample shrinks to at most this fraction of its size
_WORTH_IT = 0.9
_SAMPLE_PER_SEGMENT = 256 << 10
_SAMPLE_BUDGET = 4 << 20
#: payloads smaller than this are stored raw: zstd cannot win much and decoding stays cheap
_TINY = 1024
#: payloads up to this size are compressed whole instead of sampled
_SMALL = 256 << 10
#: payloads this big use a faster zstd level and worker threads
_BIG = 16 << 20


@dataclass(frozen=True)
class Encoded:
    """An object ready to be written: ``chunks`` concatenated are the blob's bytes.

    ``key`` is the SHA-256 hex of the *uncompressed* framed payload, so equal objects share a
    blob and the existence check can happen before compressing. Large out-of-band pickle-5
    buffers (numpy arrays, pandas blocks) appear in ``chunks`` as memoryviews, not copies.
    """

    key: str
    size: int  # uncompressed payload size
    encoding: str  # "pickle5", "pickle5+zstd" or "files"
    type_name: str
    preview: str
    chunks: list[bytes | memoryview]

    def record(self, name: str, **extra: Any) -> ArtifactRecord:
        """The metadata row describing this value as the artifact ``name``."""
        return ArtifactRecord(
            name=name,
            key=self.key,
            size=self.size,
            encoding=self.encoding,
            type_name=self.type_name,
            preview=self.preview,
            **extra,
        )


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _pad(offset: int) -> bytes:
    return bytes(-offset % _ALIGN)


def _frame(pickled: bytes, buffers: list[memoryview]) -> list[bytes | memoryview]:
    """The payload as chunks: header, pickle, then the buffers, each 64-byte aligned."""
    head = _PAYLOAD_HEAD.pack(_PAYLOAD_MAGIC, len(buffers), len(pickled))
    head += struct.pack(f"<{len(buffers)}Q", *(len(b) for b in buffers))
    chunks: list[bytes | memoryview] = [head, pickled]
    offset = len(head) + len(pickled)
    for buf in buffers:
        pad = _pad(offset)
        if pad:
            chunks.append(pad)
        chunks.append(buf)
        offset += len(pad) + len(buf)
    return chunks


def _sample(segments: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """The first bytes of every segment, within a total budget (segments evenly spread)."""
    per = max(4096, min(_SAMPLE_PER_SEGMENT, _SAMPLE_BUDGET // max(1, len(segments))))
    count = max(1, _SAMPLE_BUDGET // per)
    if len(segments) > count:
        step = len(segments) / count
        segments = [segments[int(i * step)] for i in range(count)]
    return [c[:per] for c in segments]


def _compress(
    chunks: list[bytes | memoryview], size: int, segments: list[bytes | memoryview]
) -> list[bytes | memoryview] | None:
    """One zstd frame of ``chunks`` if compressing a sample of ``segments`` (the pickle and the
    buffers) pays, else None (store raw)."""
    if size < _TINY:
        return None
    import zstandard

    if size <= _SMALL:
        whole = zstandard.ZstdCompressor(level=3).compress(b"".join(chunks))
        return [whole] if len(whole) <= _WORTH_IT * size else None
    sample = b"".join(_sample(segments))
    level = 1 if size >= _BIG else 3
    if len(zstandard.ZstdCompressor(level=level).compress(sample)) > _WORTH_IT * len(sample):
        return None
    compressor = zstandard.ZstdCompressor(level=level, threads=-1 if size >= _BIG else 0)
    stream = compressor.compressobj(size=size)
    out: list[bytes | memoryview] = []
    for chunk in chunks:
        piece = stream.compress(chunk)
        if piece:
            out.append(piece)
    out.append(stream.flush())
    return out


def encode(obj: Any, *, name: str = "<object>") -> Encoded:
    """Serialize ``obj``. Raises :class:`ArtifactNotPicklable` naming ``name`` and the type.

    >>> enc = encode({"a": 1}, name="params")
    >>> decode(b"".join(enc.chunks))
    {'a': 1}
    """
    type_name = _type_name(obj)
    from shipyard.store.files import Files

    if isinstance(obj, Files):
        return _encode_files(obj, type_name)
    raw_buffers: list[pickle.PickleBuffer] = []
    try:
        pickled = pickle.dumps(obj, protocol=5, buffer_callback=raw_buffers.append)
        buffers = [b.raw() for b in raw_buffers]
    except Exception as exc:  # user __reduce__/__getstate__ may raise anything
        raise ArtifactNotPicklable(name, type_name, f"{type(exc).__name__}: {exc}") from exc
    payload = _frame(pickled, buffers)
    digest = hashlib.sha256()
    for chunk in payload:
        digest.update(chunk)
    size = sum(len(c) for c in payload)
    compressed = _compress(payload, size, [pickled, *buffers])
    encoding = 0 if compressed is None else 1
    envelope = _ENVELOPE.pack(_MAGIC, _VERSION, encoding, 0, size)
    return Encoded(
        key=digest.hexdigest(),
        size=size,
        encoding=_ENCODINGS[encoding],
        type_name=type_name,
        preview=preview(obj),
        chunks=[envelope, *(payload if compressed is None else compressed)],
    )


def _encode_files(files: Any, type_name: str) -> Encoded:
    from shipyard.store.files import manifest_bytes

    payload = manifest_bytes(files.manifest)
    return Encoded(
        key=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        encoding=_ENCODINGS[_FILES],
        type_name=type_name,
        preview=f"Files: {files.describe()}",
        chunks=[_ENVELOPE.pack(_MAGIC, _VERSION, _FILES, 0, len(payload)), payload],
    )


def manifest_payload(data: bytes | bytearray | memoryview) -> memoryview:
    """The manifest JSON inside a file artifact's blob; ``ValueError`` for any other blob."""
    view = memoryview(data).cast("B")
    if len(view) < _ENVELOPE.size or view[:4] != _MAGIC:
        raise ValueError(f"not a shipyard artifact blob (starts with {bytes(view[:8])!r})")
    _, _, encoding, _, size = _ENVELOPE.unpack_from(view)
    if encoding != _FILES:
        raise ValueError(f"not a file artifact's manifest (encoding {encoding})")
    return view[_ENVELOPE.size : _ENVELOPE.size + size]


class _Unpickler(pickle.Unpickler):
    def __init__(
        self, file: io.BytesIO, buffers: list[memoryview], find_class: Callable[[str, str], Any]
    ) -> None:
        super().__init__(file, buffers=buffers)
        self._find_class = find_class

    def find_class(self, module_name: str, global_name: str, /) -> Any:
        return self._find_class(module_name, global_name)


def _writable_payload(view: memoryview, encoding: int, size: int) -> memoryview:
    """The payload in writable memory: a view into the blob if it is writable already, else
    exactly one copy (or one decompression) into a new bytearray."""
    body = view[_ENVELOPE.size :]
    if encoding == 0:
        if len(body) < size:
            raise ValueError(f"truncated artifact blob: {len(body)} of {size} payload bytes")
        if not view.readonly:
            return body[:size]
        return memoryview(bytearray(body[:size]))
    import zstandard

    out = bytearray(size)
    target = memoryview(out)
    pos = 0
    with zstandard.ZstdDecompressor().stream_reader(body) as reader:
        while pos < size:
            n = reader.readinto(target[pos:])
            if not n:
                raise ValueError(f"truncated artifact blob: {pos} of {size} payload bytes")
            pos += n
    return target


def decode(
    data: bytes | bytearray | memoryview, *, find_class: Callable[[str, str], Any] | None = None
) -> Any:
    """Inverse of :func:`encode` (the encoding is in the blob's header). ``find_class``
    overrides ``pickle.Unpickler.find_class`` (used to load classes from a run's code).

    Out-of-band buffers come back as writable views into one ``bytearray`` (``data`` itself
    when it is a bytearray, as :meth:`BlobStore.get` returns), so numpy arrays are writable.
    """
    view = memoryview(data).cast("B")
    if len(view) < _ENVELOPE.size or view[:4] != _MAGIC:
        raise ValueError(
            f"not a shipyard artifact blob (starts with {bytes(view[:8])!r}, expected {_MAGIC!r})"
        )
    _, version, encoding, _, size = _ENVELOPE.unpack_from(view)
    if version != _VERSION or encoding >= len(_ENCODINGS):
        raise ValueError(
            f"artifact blob version {version} encoding {encoding} is not supported by this "
            f"shipyard (reads version {_VERSION}); upgrade shipyard to read it"
        )
    if encoding == _FILES:
        from shipyard.store.files import Files, parse_manifest

        return Files.from_manifest(parse_manifest(view[_ENVELOPE.size : _ENVELOPE.size + size]))
    payload = _writable_payload(view, encoding, size)
    _, count, pickle_size = _PAYLOAD_HEAD.unpack_from(payload)
    sizes = struct.unpack_from(f"<{count}Q", payload, _PAYLOAD_HEAD.size)
    offset = _PAYLOAD_HEAD.size + 8 * count
    pickled = payload[offset : offset + pickle_size]
    offset += pickle_size
    buffers = []
    for n in sizes:
        offset += -offset % _ALIGN
        buffers.append(payload[offset : offset + n])
        offset += n
    if offset > size:
        raise ValueError(f"corrupt artifact blob: buffers end at {offset}, payload is {size}")
    if find_class is None:
        return pickle.loads(pickled, buffers=buffers)
    return _Unpickler(io.BytesIO(pickled), buffers, find_class).load()


class _Repr(reprlib.Repr):
    def repr_instance(self, x: object, level: int) -> str:
        if level == self.maxlevel:  # the object itself: a failing repr means "<TypeName>"
            return _cut(repr(x), self.maxother)
        return super().repr_instance(x, level)  # an item inside a container


def _reprer(limit: int) -> reprlib.Repr:
    """A bounded repr: big containers and strings are cut before they are built in full."""
    r = _Repr()
    r.maxlist = r.maxtuple = r.maxset = r.maxfrozenset = r.maxdict = r.maxdeque = 8
    r.maxlevel = 3
    r.maxstring = r.maxother = r.maxlong = max(limit, 8)
    return r


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _numpy_preview(obj: Any) -> str | None:
    if getattr(obj, "ndim", 0) and hasattr(obj, "dtype"):
        return f"{type(obj).__name__} shape={tuple(obj.shape)} dtype={obj.dtype}"
    return None


def _pandas_preview(obj: Any, limit: int) -> str | None:
    kind = type(obj).__name__
    if kind == "DataFrame":
        columns = _cut(_reprer(limit).repr(list(obj.columns)), limit)
        head = obj.head(5).to_string(max_cols=8, max_colwidth=20)
        return f"DataFrame shape={tuple(obj.shape)} columns={columns}\n{_cut(head, 4 * limit)}"
    if kind == "Series":
        head = obj.head(5).to_string(max_rows=5)
        return f"Series name={obj.name!r} len={len(obj)} dtype={obj.dtype}\n{_cut(head, 4 * limit)}"
    return None


def preview(obj: Any, limit: int = 200) -> str:
    """Type-aware short description: shape/dtype for numpy, head for pandas, else a
    truncated repr. Never raises (falls back to ``<TypeName>``).

    At most ``limit`` characters, except that a pandas head may add up to ``4 * limit``.
    Never imports numpy or pandas: an object of theirs means they are imported already.

    >>> preview([1, 2, 3])
    'list len=3 [1, 2, 3]'
    """
    cls = type(obj)
    try:
        package = (cls.__module__ or "").partition(".")[0]
        special = None
        if package == "numpy":
            special = _numpy_preview(obj)
        elif package == "pandas":
            special = _pandas_preview(obj, limit)
        if special is not None:
            return special
        text = _reprer(limit).repr(obj)
        if isinstance(obj, list | tuple | dict | set | frozenset):
            text = f"{cls.__name__} len={len(obj)} {text}"
        return _cut(text, limit)
    except Exception:
        return f"<{cls.__name__}>"
