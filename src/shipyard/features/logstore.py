"""Where serving-log segments live: next to the blob store's blobs, under ``serving-logs/``.

- ``file:///dir`` (the default, ``SHIPYARD_HOME/blobs``): ``dir/serving-logs/<service>/``.
  A segment is written to a hidden temp file in that folder (``.<name>.<pid>.tmp``) and
  renamed to its final name once complete and fsynced (then the folder is fsynced): a
  reader lists final names only, so a writer killed mid-segment leaves nothing half-written
  visible. A later writer of the same service removes temp files whose process is gone.
- ``s3://bucket/prefix``: objects ``prefix/serving-logs/<service>/<name>``; the segment is
  built in a local temp file and sent with one PUT (atomic on S3).

The blob store's garbage collector never sees these: it only lists content-addressed keys.
A segment's name is ``<first ms>-<last ms>-<host>-<pid>-<seq>.msgpack.zst`` (UTC epoch
milliseconds of its first and last record), so a reader or the retention skips whole
segments by name.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from shipyard._proc import pid_alive

__all__ = ["SEGMENT", "LocalSegments", "S3Segments", "Segment", "SegmentStore", "open_segments"]

FOLDER = "serving-logs"
#: a finished segment's name
SEGMENT = re.compile(r"(\d{13})-(\d{13})-([A-Za-z0-9_.-]+)-(\d+)-(\d{6})\.msgpack\.zst")
_TEMP = re.compile(r"\.(.+)\.(\d+)\.tmp")


@dataclass(frozen=True)
class Segment:
    """A finished segment: its name and the times (epoch ms) of its first and last records."""

    name: str
    first_ms: int
    last_ms: int


def parse_segment(name: str) -> Segment | None:
    found = SEGMENT.fullmatch(name)
    if found is None:
        return None
    return Segment(name, int(found.group(1)), int(found.group(2)))


class SegmentStore(Protocol):
    """One narrow interface over the two backends."""

    url: str

    def spool(self, service: str, name: str) -> Path:
        """A temp file path to build the segment ``name`` in (never listed)."""
        ...

    def publish(self, service: str, spooled: Path, name: str) -> None:
        """Make the complete, fsynced ``spooled`` file visible as ``name``; atomic."""
        ...

    def segments(self, service: str) -> list[Segment]:
        """The service's finished segments, oldest first."""
        ...

    def read(self, service: str, name: str) -> bytes: ...

    def delete(self, service: str, name: str) -> None: ...

    def clean_spool(self, service: str) -> int:
        """Remove temp files left by writers that are gone; how many."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalSegments:
    """Segments under ``root/serving-logs/<service>/`` (``root``: the blob store's folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root / FOLDER
        self.url = f"file://{self.root}"

    def folder(self, service: str) -> Path:
        return self.root / service

    def spool(self, service: str, name: str) -> Path:
        folder = self.folder(service)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder / f".{name}.{os.getpid()}.tmp"

    def publish(self, service: str, spooled: Path, name: str) -> None:
        folder = self.folder(service)
        os.replace(spooled, folder / name)
        _fsync_dir(folder)

    def _names(self, service: str) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(self.folder(service)) as entries:
                yield from entries
        except FileNotFoundError:
            return

    def segments(self, service: str) -> list[Segment]:
        found = [parse_segment(e.name) for e in self._names(service)]
        return sorted((s for s in found if s is not None), key=lambda s: (s.first_ms, s.name))

    def read(self, service: str, name: str) -> bytes:
        return (self.folder(service) / name).read_bytes()

    def delete(self, service: str, name: str) -> None:
        (self.folder(service) / name).unlink(missing_ok=True)

    def clean_spool(self, service: str) -> int:
        removed = 0
        for entry in list(self._names(service)):
            found = _TEMP.fullmatch(entry.name)
            if found is not None and not pid_alive(int(found.group(2))):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed


class S3Segments:
    """Segments as objects ``prefix/serving-logs/<service>/<name>``."""

    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None) -> None:
        self.bucket = bucket
        self.prefix = "/".join(p for p in (prefix.strip("/"), FOLDER) if p)
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}"
        self._client_obj: Any = None
        self._pid = -1
        self._spool = Path(tempfile.gettempdir()) / "shipyard-serving-logs"

    def _client(self) -> Any:
        if self._client_obj is None or self._pid != os.getpid():
            import boto3

            session = boto3.session.Session()
            self._client_obj = session.client("s3", endpoint_url=self.endpoint_url)
            self._pid = os.getpid()
        return self._client_obj

    def _key(self, service: str, name: str) -> str:
        return f"{self.prefix}/{service}/{name}"

    def spool(self, service: str, name: str) -> Path:
        folder = self._spool / service
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder / f".{name}.{os.getpid()}.tmp"

    def publish(self, service: str, spooled: Path, name: str) -> None:
        with open(spooled, "rb") as data:
            self._client().put_object(
                Bucket=self.bucket, Key=self._key(service, name), Body=data.read()
            )
        spooled.unlink(missing_ok=True)

    def segments(self, service: str) -> list[Segment]:
        prefix = f"{self.prefix}/{service}/"
        paginator = self._client().get_paginator("list_objects_v2")
        found: list[Segment] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                segment = parse_segment(item["Key"][len(prefix) :])
                if segment is not None:
                    found.append(segment)
        return sorted(found, key=lambda s: (s.first_ms, s.name))

    def read(self, service: str, name: str) -> bytes:
        answer = self._client().get_object(Bucket=self.bucket, Key=self._key(service, name))
        return bytes(answer["Body"].read())

    def delete(self, service: str, name: str) -> None:
        self._client().delete_object(Bucket=self.bucket, Key=self._key(service, name))

    def clean_spool(self, service: str) -> int:
        removed = 0
        folder = self._spool / service
        if not folder.is_dir():
            return 0
        for path in folder.iterdir():
            found = _TEMP.fullmatch(path.name)
            if found is not None and not pid_alive(int(found.group(2))):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def open_segments(store_url: str | None = None) -> SegmentStore:
    """The segment store beside the blob store ``store_url`` (default: the settings')."""
    if store_url is None:
        from shipyard.config import settings

        store_url = settings().store_url
    parts = urlsplit(store_url)
    if parts.scheme == "file":
        return LocalSegments(Path(unquote(parts.path)))
    if parts.scheme == "s3" and parts.netloc:
        endpoint = (
            os.environ.get("SHIPYARD_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None
        )
        return S3Segments(parts.netloc, parts.path, endpoint)
    raise ValueError(
        f"unsupported store URL {store_url!r} for serving logs: expected file:///absolute/dir "
        "or s3://bucket[/prefix] (SHIPYARD_STORE_URL)"
    )
