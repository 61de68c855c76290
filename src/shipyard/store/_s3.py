"""The S3 blob backend: ``s3://bucket/prefix`` holds ``prefix/<key[:2]>/<key>``.

The boto3 client is built lazily and once per process: a store object created before
``os.fork()`` (the task zygote) notices the new pid in the child and builds its own client
rather than sharing the parent's connection pool.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn
from urllib.parse import urlsplit

from shipyard.store.blobs import BlobNotFound, check_key, check_range, is_key

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
#: cap one readinto so urllib3 never materialises a huge temporary bytes object
_READ_STEP = 8 << 20


class _ChunkReader(io.RawIOBase):
    """A non-seekable file over a list of buffers, for ``upload_fileobj`` (multipart)."""

    def __init__(self, parts: list[memoryview]) -> None:
        super().__init__()
        self._parts = parts
        self._index = 0
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(out) and self._index < len(self._parts):
            part = self._parts[self._index]
            n = min(len(out) - filled, len(part) - self._offset)
            out[filled : filled + n] = part[self._offset : self._offset + n]
            filled += n
            self._offset += n
            if self._offset == len(part):
                self._index, self._offset = self._index + 1, 0
        return filled

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = sum(len(p) for p in self._parts[self._index :]) - self._offset
        data = bytearray(size)
        n = self.readinto(data)
        del data[n:]
        return bytes(data)


class _StreamReader(io.RawIOBase):
    """A non-seekable file over an iterator of chunks, read one chunk at a time: a file
    artifact's file goes up without ever being whole in memory."""

    def __init__(self, chunks: Iterator[bytes | memoryview]) -> None:
        super().__init__()
        self._chunks = chunks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        while not self._current:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._current = memoryview(chunk).cast("B")
        n = min(len(out), len(self._current))
        out[:n] = self._current[:n]
        self._current = self._current[n:]
        return n


class S3BlobStore:
    """Blobs as S3 objects; see :class:`shipyard.store.blobs.BlobStore`.

    Blobs larger than ``multipart_threshold`` go up as a multipart upload of ``part_size``
    parts; S3 makes both a PUT and a completed multipart upload visible atomically.
    """

    multipart_threshold: int = 64 << 20
    part_size: int = 16 << 20
    list_page_size: int = 1000

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client_obj: Any = None
        self._client_pid = -1

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """Build from ``s3://bucket/prefix``; the endpoint comes from
        ``SHIPYARD_S3_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL`` (default: AWS)."""
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"unsupported blob store URL {url!r}: expected s3://bucket[/prefix]")
        endpoint = (
            os.environ.get("SHIPYARD_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None
        )
        return cls(parts.netloc, parts.path, endpoint)

    def _client(self) -> Any:
        pid = os.getpid()
        if self._client_obj is None or self._client_pid != pid:
            import boto3

            # A fresh session per process: boto3's default session is not fork-safe either.
            session = boto3.session.Session()
            self._client_obj = session.client("s3", endpoint_url=self.endpoint_url)
            self._client_pid = pid
        return self._client_obj

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key[:2]}/{key}" if self.prefix else f"{key[:2]}/{key}"

    def _raise(self, exc: Exception, key: str) -> NoReturn:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in _NOT_FOUND:
            raise BlobNotFound(f"no blob {key!r} in {self.url}") from None
        if code == "NoSuchBucket":
            raise FileNotFoundError(
                f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}: "
                "create it or point SHIPYARD_STORE_URL at an existing bucket"
            ) from exc
        raise exc

    def put(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """HEAD for dedup, then one PUT (or a multipart upload for big blobs). ``chunks``
        that is not a list or tuple (a generator) is streamed: read as the upload goes."""
        if self.exists(key):
            return False
        from botocore.exceptions import ClientError

        if not isinstance(chunks, list | tuple):
            self._stream(key, iter(chunks))
            return True

        parts = [memoryview(c).cast("B") for c in chunks]
        total = sum(len(p) for p in parts)
        client = self._client()
        if total <= self.multipart_threshold:
            body = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)
            try:
                client.put_object(Bucket=self.bucket, Key=self._name(key), Body=body)
            except ClientError as exc:
                self._raise(exc, key)
        else:
            from boto3.s3.transfer import TransferConfig

            config = TransferConfig(
                multipart_threshold=self.multipart_threshold, multipart_chunksize=self.part_size
            )
            client.upload_fileobj(_ChunkReader(parts), self.bucket, self._name(key), Config=config)
        return True

    def _stream(self, key: str, chunks: Iterator[bytes | memoryview]) -> None:
        from boto3.s3.transfer import TransferConfig

        # parts are read one after the other; at most a few parts are in memory at once
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.part_size,
            max_concurrency=2,
        )
        reader = _StreamReader(chunks)
        self._client().upload_fileobj(reader, self.bucket, self._name(key), Config=config)

    def get(self, key: str) -> bytearray:
        """One GET streamed with ``readinto`` into a preallocated ``bytearray``."""
        from botocore.exceptions import ClientError

        try:
            response = self._client().get_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            self._raise(exc, key)
        size = int(response["ContentLength"])
        data = bytearray(size)
        view = memoryview(data)
        with response["Body"] as body:
            pos = 0
            while pos < size:
                n = body.readinto(view[pos : pos + _READ_STEP])
                if not n:
                    raise OSError(f"blob {key!r} in {self.url}: connection ended early")
                pos += n
        view.release()
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """A ranged GET; fewer bytes at the end of the blob, ``b""`` past it."""
        from botocore.exceptions import ClientError

        check_range(start, length)
        if length == 0:
            if not self.exists(key):
                raise BlobNotFound(f"no blob {key!r} in {self.url}")
            return b""
        try:
            response = self._client().get_object(
                Bucket=self.bucket, Key=self._name(key), Range=f"bytes={start}-{start + length - 1}"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # S3 says 416 only when the object exists and start is past its end
            self._raise(exc, key)
        with response["Body"] as body:
            data: bytes = body.read()
        return data

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client().head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            try:
                self._raise(exc, key)
            except BlobNotFound:
                return False
        return True

    def delete(self, key: str) -> None:
        """Remove the blob; no error if absent (S3 DELETE is idempotent)."""
        self._client().delete_object(Bucket=self.bucket, Key=self._name(key))

    def list(self) -> Iterator[tuple[str, float]]:
        """Every blob under the prefix, paginating ``list_objects_v2``."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        paginator = self._client().get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.list_page_size}
        )
        for page in pages:
            for item in page.get("Contents", []):
                rest = item["Key"][len(prefix) :]
                folder, _, name = rest.partition("/")
                if is_key(name) and folder == name[:2]:
                    yield name, item["LastModified"].timestamp()
