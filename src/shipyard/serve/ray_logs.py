"""A Ray replica's serving log, shipped back to the host's store.

A worker on Ray writes its :class:`shipyard.features.ServingLog` segments where its store
is: its node's cache (``<node cache>/blobs/serving-logs/<service>/``, ``ray_files.py``).
The skew check and :func:`shipyard.features.read_serving_log` read the host's store, so the
segments travel back:

1. **On the node** the replica (shipyard's actor, not the service's code) lists the
   folder's *published* segments - a segment is published by an atomic rename from a
   hidden temp name once complete and fsynced, so a name not starting with ``.`` is a
   whole segment, and an in-progress one is never listed (:func:`published`) - and offers
   their names to the cluster's directory actor, which answers which ones the host already
   stored (the node deletes those) and which it still wants (the node sends those, with
   their SHA-256: :func:`offer`). It does so every :data:`SHIP_SECONDS`, when its worker
   exits, and when Ray stops it (after the worker's last segment was published): so a
   drained or redeployed replica's last segment goes too, and a replica Ray starts on a
   node also ships what a killed predecessor of the same service left there.
2. **The directory** keeps each segment in Ray's object store (owned by that detached
   actor: it outlives a host restart) until the host took it.
3. **On the host** a task takes the pending segments every :data:`COLLECT_SECONDS`,
   checks each one's SHA-256, writes it atomically into its store's
   ``serving-logs/<service>/`` (hidden temp file, fsync, rename, fsync of the folder; on
   S3 one PUT: :func:`store_segments`) and tells the directory, which lets the nodes
   delete them.

A node deletes a segment only once the host's store holds it. A segment that arrives
twice (two replicas of one node offering the same file) is written once.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger("shipyard.serve")

#: the serving logs' folder in a store (``shipyard.features.logstore``'s layout)
FOLDER = "serving-logs"
#: how often a replica offers its node's published segments
SHIP_SECONDS = 2.0
#: how often the host takes what the nodes shipped
COLLECT_SECONDS = 2.0
#: at most this many bytes of segments in one offer (the rest go next time)
BATCH_BYTES = 64 << 20

#: name -> (SHA-256, the segment's bytes)
Segments = dict[str, tuple[str, bytes]]


class LogShipError(ValueError):
    """The host cannot store shipped segments (a store URL it cannot write them to)."""


def folder(root: Path, service: str) -> Path:
    """A service's serving-log folder in a node cache's blob store."""
    return root / "blobs" / FOLDER / service


def published(where: Path) -> list[str]:
    """The published segments' names in ``where`` (oldest name first; none when absent)."""
    try:
        entries = list(os.scandir(where))
    except FileNotFoundError:
        return []
    return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file())


def offer(
    where: Path,
    ask: Callable[[list[str]], dict[str, list[str]]],
    send: Callable[[Segments], None],
) -> int:
    """Ship the published segments of ``where`` (node side): ``ask(names)`` answers which
    the host has ``stored`` (deleted here) and which it still ``wanted`` (read and handed
    to ``send`` with their SHA-256, at most :data:`BATCH_BYTES` at a time). Returns how
    many were sent."""
    names = published(where)
    if not names:
        return 0
    answer = ask(names)
    for name in answer.get("stored", []):
        try:
            (where / _checked(name)).unlink()
        except FileNotFoundError:
            pass
    batch: Segments = {}
    size = 0
    sent = 0
    for name in answer.get("wanted", []):
        try:
            data = (where / _checked(name)).read_bytes()
        except FileNotFoundError:  # the writer's retention removed it meanwhile
            continue
        batch[name] = (hashlib.sha256(data).hexdigest(), data)
        size += len(data)
        if size >= BATCH_BYTES:
            send(batch)
            sent += len(batch)
            batch, size = {}, 0
    if batch:
        send(batch)
        sent += len(batch)
    return sent


def store_segments(store_url: str, service: str, segments: Segments) -> list[str]:
    """Write ``segments`` into the host's store, each only once its SHA-256 matched and
    atomically (a ``file://`` store: hidden temp file, fsync, rename, fsync of the folder;
    ``s3://``: one PUT of ``prefix/serving-logs/<service>/<name>``); returns the names the
    store now holds (those it had already included). A corrupt segment is left out (the
    node keeps its copy and offers it again)."""
    parts = urlsplit(store_url)
    _checked(service)
    if parts.scheme == "file":
        writer: _Writer = _LocalWriter(Path(unquote(parts.path)) / FOLDER / service)
    elif parts.scheme == "s3" and parts.netloc:
        writer = _S3Writer(parts.netloc, parts.path.strip("/"), service)
    else:
        raise LogShipError(f"cannot ship serving logs to the store {store_url}")
    stored = []
    for name, (expected, data) in segments.items():
        _checked(name)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            log.warning(
                "serving log %s: segment %s arrived corrupt (SHA-256 %s, not %s): not stored",
                service,
                name,
                actual,
                expected,
            )
            continue
        held = writer.held(name)
        if held is None:
            writer.write(name, data)
        elif held != expected:
            log.warning("serving log %s: %s exists with other bytes: kept", service, name)
            continue
        stored.append(name)
    if stored:
        writer.done()
    return stored


class _Writer:
    def held(self, name: str) -> str | None:
        """The SHA-256 of the segment ``name`` the store holds (None: it has none)."""
        raise NotImplementedError

    def write(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def done(self) -> None:
        pass


class _LocalWriter(_Writer):
    def __init__(self, target: Path) -> None:
        self.target = target
        target.mkdir(parents=True, exist_ok=True)

    def held(self, name: str) -> str | None:
        try:
            with open(self.target / name, "rb") as file:
                return hashlib.file_digest(file, "sha256").hexdigest()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        tmp = self.target / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, self.target / name)

    def done(self) -> None:
        fd = os.open(self.target, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _S3Writer(_Writer):
    def __init__(self, bucket: str, prefix: str, service: str) -> None:
        import boto3

        endpoint = (
            os.environ.get("SHIPYARD_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None
        )
        self.client = boto3.session.Session().client("s3", endpoint_url=endpoint)
        self.bucket = bucket
        self.folder = "/".join(p for p in (prefix, FOLDER, service) if p)

    def held(self, name: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=f"{self.folder}/{name}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return hashlib.sha256(answer["Body"].read()).hexdigest()

    def write(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.folder}/{name}", Body=data)


def _checked(name: str) -> str:
    """A service's or segment's name: one path component, not hidden."""
    if not name or "/" in name or "\0" in name or name.startswith("."):
        raise ValueError(f"not a serving-log name: {name!r}")
    return name


__all__ = [
    "COLLECT_SECONDS",
    "FOLDER",
    "LogShipError",
    "SHIP_SECONDS",
    "Segments",
    "folder",
    "offer",
    "published",
    "store_segments",
]
