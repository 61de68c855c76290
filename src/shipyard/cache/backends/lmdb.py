"""``lmdb://PATH``: the embedded backend, one LMDB environment under ``PATH``.

Layout: two named databases.

- ``meta``: ``S<ns>`` -> the namespace's last version number; ``L<ns>`` -> its live version;
  ``V<ns>\\0<version>`` -> the version's record (msgpack); ``N`` -> the next key prefix.
- ``data``: ``<prefix><key>`` -> value, where ``<prefix>`` is 8 bytes unique to a version. A
  version's keys are one contiguous range, so dropping it is a range delete.

A key-prefix scheme rather than one named database per version: every open database handle
costs each read transaction of a long-lived reader (LMDB copies the handle table at every
``begin``), and versions come and go every few hours for months.

Processes: readers use short read-only transactions (any number of processes; LMDB's lock
file tracks them); writers in several processes are serialized by LMDB's write lock, and a
bulk load commits every ``CHUNK_ITEMS`` items or ``CHUNK_BYTES`` bytes, so it never holds the
lock for long nor builds a huge transaction in memory. An environment is opened once per
process and path (LMDB forbids opening it twice). After ``fork`` the child never uses the
inherited one: it closes it (py-lmdb leaves the parent's cached reader slot alone then, but a
transaction *open* at the moment of the fork would lose its slot, so do not fork while another
thread is inside a cache call) and opens its own. Opening also clears reader slots left by dead
processes (``reader_check``), so restarted workers do not exhaust ``MAX_READERS``.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from shipyard.cache.backends.base import (
    BackendUnavailable,
    CacheError,
    VersionInfo,
    check_version_id,
    version_order,
)

MAP_SIZE = 64 << 30  # sparse: the file grows only as pages are written
MAX_READERS = 1024
CHUNK_ITEMS = 20_000
CHUNK_BYTES = 32 << 20
_RECORD = b"V"
_LIVE = b"L"
_SEQ = b"S"
_NEXT_PREFIX = b"N"


class _Env:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(
            str(path),
            map_size=MAP_SIZE,
            max_dbs=4,
            max_readers=MAX_READERS,
            lock=True,
            readahead=False,  # random point reads: don't page in neighbours
        )
        self.env.reader_check()
        self.meta = self.env.open_db(b"meta")
        self.data = self.env.open_db(b"data")


_envs: dict[str, _Env] = {}
_envs_lock = threading.Lock()
_inherited: dict[str, _Env] = {}  # a forked child's copies of its parent's environments
_generation = 0


def _after_fork_in_child() -> None:
    global _generation, _envs_lock
    _inherited.update(_envs)
    _envs.clear()
    _envs_lock = threading.Lock()
    _generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def _open_env(path: Path) -> _Env:
    key = str(path)
    env = _envs.get(key)
    if env is None:
        with _envs_lock:
            env = _envs.get(key)
            if env is None:
                try:
                    stale = _inherited.pop(key, None)
                    if stale is not None:  # LMDB forbids a second open while it is open
                        stale.env.close()
                    env = _envs[key] = _Env(path)
                except (lmdb.Error, OSError) as exc:
                    raise BackendUnavailable(
                        f"cannot open the LMDB cache at {path}: {exc}"
                    ) from exc
    return env


def _record_key(namespace: str, version: str) -> bytes:
    return _RECORD + namespace.encode() + b"\x00" + version.encode()


def _info(version: str, record: dict[str, Any]) -> VersionInfo:
    return VersionInfo(
        version=version,
        created_at=record["created_at"],
        published_at=record["published_at"],
        keys=record["keys"],
        meta=record["meta"],
    )


class LmdbBackend:
    """Versions of namespaces in one LMDB environment (see the module docstring)."""

    def __init__(self, url: str) -> None:
        if not url.startswith("lmdb://") or not url[len("lmdb://") :]:
            raise CacheError(f"bad LMDB cache URL {url!r}: use lmdb:///absolute/path")
        self.url = url
        self.path = Path(url[len("lmdb://") :]).expanduser().absolute()
        self._generation = -1
        self._env: _Env | None = None
        self._prefixes: dict[tuple[str, str], bytes] = {}

    # --- plumbing --------------------------------------------------------------------
    def _e(self) -> _Env:
        if self._generation != _generation or self._env is None:
            self._env = _open_env(self.path)
            self._generation = _generation
        return self._env

    def _read_record(self, txn: lmdb.Transaction, namespace: str, version: str) -> dict[str, Any]:
        raw = txn.get(_record_key(namespace, version), db=self._e().meta)
        if raw is None:
            raise CacheError(
                f"version {version!r} of cache namespace {namespace!r} not found in {self.url}"
            )
        record: dict[str, Any] = msgpack.unpackb(raw)
        return record

    def _write_record(
        self, txn: lmdb.Transaction, namespace: str, version: str, record: dict[str, Any]
    ) -> None:
        txn.put(_record_key(namespace, version), msgpack.packb(record), db=self._e().meta)

    def _write(self) -> lmdb.Transaction:
        try:
            return self._e().env.begin(write=True)
        except lmdb.Error as exc:
            raise CacheError(f"cannot write to the LMDB cache at {self.path}: {exc}") from exc

    # --- the Backend protocol --------------------------------------------------------
    def begin(self, namespace: str, meta: dict[str, Any], version: str | None = None) -> str:
        e = self._e()
        with self._write() as txn:
            last = int(txn.get(_SEQ + namespace.encode(), b"0", db=e.meta))
            if version is None:
                version = f"{last + 1:06d}"
            else:
                check_version_id(namespace, version)
                if txn.get(_record_key(namespace, version), db=e.meta) is not None:
                    raise CacheError(f"version {version} of {namespace!r} exists already")
            prefix = int(txn.get(_NEXT_PREFIX, b"0", db=e.meta))
            txn.put(_SEQ + namespace.encode(), str(max(last, int(version))).encode(), db=e.meta)
            txn.put(_NEXT_PREFIX, str(prefix + 1).encode(), db=e.meta)
            record = {
                "created_at": time.time(),
                "published_at": None,
                "keys": 0,
                "meta": dict(meta),
                "prefix": prefix.to_bytes(8, "big"),
            }
            self._write_record(txn, namespace, version, record)
        return version

    def put_many(self, namespace: str, version: str, items: Iterable[tuple[bytes, bytes]]) -> int:
        e = self._e()
        iterator = iter(items)
        written = 0
        while True:
            chunk: list[tuple[bytes, bytes]] = []
            size = 0
            for key, value in itertools.islice(iterator, CHUNK_ITEMS):
                chunk.append((key, value))
                size += len(key) + len(value)
                if size >= CHUNK_BYTES:
                    break
            if not chunk:
                return written
            try:
                with self._write() as txn:
                    record = self._read_record(txn, namespace, version)
                    if record["published_at"] is not None:
                        raise CacheError(
                            f"version {version} of {namespace!r} is published, hence read-only: "
                            "start a new version with cache.writer()"
                        )
                    prefix: bytes = record["prefix"]
                    cursor = txn.cursor(db=e.data)
                    consumed, _ = cursor.putmulti([(prefix + k, v) for k, v in chunk])
                    written += consumed
            except lmdb.MapFullError as exc:
                raise CacheError(
                    f"the LMDB cache at {self.path} is full ({MAP_SIZE >> 30} GiB): drop old "
                    "versions with `shipyard cache gc`"
                ) from exc

    def publish(
        self, namespace: str, version: str, meta: dict[str, Any] | None = None
    ) -> VersionInfo:
        e = self._e()
        with self._write() as txn:
            record = self._read_record(txn, namespace, version)
            if record.get("dropping"):
                raise CacheError(f"version {version} of {namespace!r} is being dropped")
            if record["published_at"] is None:
                record["keys"] = self._count(txn, record["prefix"])
                record["published_at"] = time.time()
            if meta:
                record["meta"] = {**record["meta"], **meta}
            self._write_record(txn, namespace, version, record)
            txn.put(_LIVE + namespace.encode(), version.encode(), db=e.meta)
        return _info(version, record)

    def _count(self, txn: lmdb.Transaction, prefix: bytes) -> int:
        cursor = txn.cursor(db=self._e().data)
        if not cursor.set_range(prefix):
            return 0
        count = 0
        for key in cursor.iternext(keys=True, values=False):
            if key[:8] != prefix:
                break
            count += 1
        return count

    def live(self, namespace: str) -> str | None:
        e = self._e()
        try:
            with e.env.begin(db=e.meta) as txn:
                raw = txn.get(_LIVE + namespace.encode())
        except lmdb.Error as exc:
            raise BackendUnavailable(f"cannot read the LMDB cache at {self.path}: {exc}") from exc
        return None if raw is None else raw.decode()

    def _prefix(self, namespace: str, version: str) -> bytes:
        prefix = self._prefixes.get((namespace, version))
        if prefix is None:
            e = self._e()
            with e.env.begin() as txn:
                prefix = self._read_record(txn, namespace, version)["prefix"]
            self._prefixes[(namespace, version)] = prefix
        return prefix

    def get_many(self, namespace: str, version: str, keys: Sequence[bytes]) -> list[bytes | None]:
        prefix = self._prefixes.get((namespace, version)) or self._prefix(namespace, version)
        e = self._env if self._generation == _generation and self._env else self._e()
        try:
            with e.env.begin(db=e.data) as txn:
                get = txn.get
                return [get(prefix + k) for k in keys]
        except lmdb.Error as exc:
            raise BackendUnavailable(f"cannot read the LMDB cache at {self.path}: {exc}") from exc

    def versions(self, namespace: str) -> list[VersionInfo]:
        e = self._e()
        start = _record_key(namespace, "")
        infos = []
        with e.env.begin(db=e.meta, buffers=True) as txn:
            cursor = txn.cursor()
            if cursor.set_range(start):
                for raw_key, raw in cursor:
                    key = bytes(raw_key)
                    if not key.startswith(start):
                        break
                    record = msgpack.unpackb(raw)
                    if record["published_at"] is None:
                        record["keys"] = self._count(txn, record["prefix"])
                    infos.append(_info(key[len(start) :].decode(), record))
        return sorted(infos, key=lambda info: version_order(info.version))

    def set_live(self, namespace: str, version: str) -> None:
        e = self._e()
        with self._write() as txn:
            record = self._read_record(txn, namespace, version)
            if record["published_at"] is None:
                raise CacheError(
                    f"version {version} of {namespace!r} was never published: it may be "
                    "incomplete, so it cannot be made live"
                )
            txn.put(_LIVE + namespace.encode(), version.encode(), db=e.meta)

    def drop(self, namespace: str, version: str) -> None:
        """Mark the version as dropping (it is then unpublished, so never made live again),
        delete its keys in chunks, then its record. An interrupted drop is finished by the
        next ``drop`` of the same version (``gc`` does that)."""
        e = self._e()
        with self._write() as txn:
            if txn.get(_LIVE + namespace.encode(), db=e.meta) == version.encode():
                raise CacheError(f"version {version} of {namespace!r} is live: not dropping it")
            record = self._read_record(txn, namespace, version)
            record.update(published_at=None, dropping=True)
            self._write_record(txn, namespace, version, record)
        prefix: bytes = record["prefix"]
        while True:
            with self._write() as txn:
                cursor = txn.cursor(db=e.data)
                deleted = 0
                if cursor.set_range(prefix):
                    while deleted < CHUNK_ITEMS and cursor.key()[:8] == prefix:
                        cursor.delete()  # moves to the next key
                        deleted += 1
                if deleted < CHUNK_ITEMS:
                    txn.delete(_record_key(namespace, version), db=e.meta)
                    break
        self._prefixes.pop((namespace, version), None)

    def _live_record(self, txn: lmdb.Transaction, namespace: str, version: str) -> bytes:
        """The version's key prefix, or CacheError if it is gone or being dropped."""
        record = self._read_record(txn, namespace, version)
        if record.get("dropping"):
            raise CacheError(f"version {version} of {namespace!r} is being dropped")
        prefix: bytes = record["prefix"]
        return prefix

    def scan(self, namespace: str, version: str) -> Iterator[list[tuple[bytes, bytes]]]:
        """In batches of 1,000, a short read transaction each (writers are never held up)."""
        e = self._e()
        with e.env.begin() as txn:
            prefix = self._live_record(txn, namespace, version)
        last: bytes | None = None  # the last key of the previous batch
        while True:
            batch: list[tuple[bytes, bytes]] = []
            with e.env.begin(db=e.data) as txn:
                cursor = txn.cursor()
                found = cursor.set_range(prefix + (last or b""))
                if found and last is not None and cursor.key() == prefix + last:
                    found = cursor.next()
                while found and len(batch) < 1000:
                    key = cursor.key()
                    if key[:8] != prefix:
                        break
                    batch.append((key[8:], cursor.value()))
                    found = cursor.next()
            if not batch:
                return
            yield batch
            last = batch[-1][0]

    def replace_values(
        self, namespace: str, version: str, changes: Iterable[tuple[bytes, bytes, bytes]]
    ) -> int:
        """One write transaction per ``CHUNK_ITEMS`` changes."""
        e = self._e()
        iterator = iter(changes)
        replaced = 0
        while chunk := list(itertools.islice(iterator, CHUNK_ITEMS)):
            with self._write() as txn:
                prefix = self._live_record(txn, namespace, version)
                for key, old, new in chunk:
                    if txn.get(prefix + key, db=e.data) == old:
                        txn.put(prefix + key, new, db=e.data)
                        replaced += 1
        return replaced

    def namespaces(self) -> list[str]:
        e = self._e()
        names = []
        with e.env.begin(db=e.meta) as txn:
            cursor = txn.cursor()
            if cursor.set_range(_SEQ):
                for key in cursor.iternext(keys=True, values=False):
                    if key[:1] != _SEQ:
                        break
                    names.append(key[1:].decode())
        return names

    def close(self) -> None:
        """Forget this handle; the process-wide environment stays open for other handles."""
        self._env = None
        self._generation = -1
