"""Materialising a stored file artifact on this host: ``SHIPYARD_HOME/files/<digest>``.

One process per host builds a tree (an exclusive lock beside it); it fills a temp directory,
checks every file's SHA-256 and renames it into place, read-only; the others wait on the lock
and reuse it. From a local blob store a file is reflinked, else hard-linked (blobs never
change), else copied; from S3 it is read in ranged GETs of :data:`~shipyard.store.files.CHUNK`
bytes. :func:`remove_stale` clears what a loader killed mid-way left.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from shipyard.store.blobs import BlobNotFound, BlobStore
from shipyard.store.files import CHUNK, Files, FilesError, hash_file

#: Linux's FICLONE ioctl (_IOW(0x94, 9, int)): a copy-on-write clone of a whole file
_FICLONE = 0x40049409
#: read-only, and the owner's alone as blobs are (a hard link shares the blob's mode)
_FILE_MODE = 0o400
_DIR_MODE = 0o500


def _local_blob(store: BlobStore, key: str) -> Path | None:
    from shipyard.store._local import LocalBlobStore

    return store.path(key) if isinstance(store, LocalBlobStore) else None


def _clone(source: Path, target: Path) -> bool:
    """A reflink of ``source`` at ``target``, or a hard link; False if neither works."""
    try:
        with open(source, "rb") as src, open(target, "xb") as dst:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        return True
    except OSError:
        target.unlink(missing_ok=True)
    try:
        # blobs are immutable and the link is made read-only: sharing the inode is safe
        os.link(source, target)
        return True
    except OSError:
        return False


def _copy_local(source: Path, target: Path) -> tuple[str, int]:
    """Copy and hash in one pass; returns (sha256, size) of what was written."""
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb", buffering=0) as src, open(target, "xb", buffering=0) as dst:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _copy_remote(store: BlobStore, key: str, size: int, target: Path) -> tuple[str, int]:
    """Ranged reads of at most :data:`CHUNK` bytes each (memory stays flat), hashed as they
    are written; returns (sha256, size) of what was written."""
    if size == 0:
        store.get_range(key, 0, 0)  # BlobNotFound if it is not there
    digest = hashlib.sha256()
    offset = 0
    with open(target, "xb", buffering=0) as dst:
        while offset < size:
            piece = store.get_range(key, offset, min(CHUNK, size - offset))
            if not piece:
                break  # shorter than the manifest says: reported as corrupt
            dst.write(piece)
            digest.update(piece)
            offset += len(piece)
    return digest.hexdigest(), offset


def _fetch(store: BlobStore, key: str, size: int, target: Path) -> None:
    local = _local_blob(store, key)
    if local is None:
        found, length = _copy_remote(store, key, size, target)
    elif not local.is_file():
        raise BlobNotFound(f"no blob {key!r} in {store.url}")
    elif _clone(local, target):
        found, length = hash_file(target)  # the blob's own bytes: check them too
    else:
        found, length = _copy_local(local, target)
    os.chmod(target, _FILE_MODE)
    if found != key or length != size:
        raise FilesError(
            f"blob {key} in {store.url} is corrupt: its bytes hash to {found} ({length} bytes, "
            f"{size} expected)"
        )


def _discard(tree: Path) -> None:
    """Remove a temp tree (its directories are read-only once filled)."""
    for folder, _, _ in os.walk(tree):
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)
    shutil.rmtree(tree, ignore_errors=True)


def materialise(files: Files, store: BlobStore | None = None, home: Path | None = None) -> Path:
    """``home/files/<digest>`` holding the tree's files, built once per host (see the module
    docstring). Raises :class:`FilesError` (a file missing from the store, a corrupt blob,
    a read-only home that nobody materialised into)."""
    if home is None:
        from shipyard.config import settings

        home = settings().home
    digest = files.digest
    target = home / "files" / digest
    if target.is_dir():
        return target
    if store is None:
        from shipyard.store.blobs import open_blob_store

        store = open_blob_store()
    parent = target.parent
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # one process per host materialises; the others wait here, then reuse its directory
        lock = os.open(parent / f".{digest}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise FilesError(
            f"cannot materialise Files {digest[:12]} under {parent}: {exc.strerror} "
            "(a service's worker sees SHIPYARD_HOME read-only: its host materialises the files "
            "of the models it resolves for it)"
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_dir():
            _build(files, store, target)
    finally:
        os.close(lock)
    return target


def _build(files: Files, store: BlobStore, target: Path) -> None:
    parent = target.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name[:12]}-", dir=parent))
    try:
        _fill(files, store, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not a loader that got there first without the lock
                raise
            _discard(tmp)
            return
    except BaseException:
        _discard(tmp)
        raise
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fill(files: Files, store: BlobStore, tmp: Path) -> None:
    folders = {tmp}
    for rel, (key, size) in sorted(files.manifest.items()):
        target = tmp / rel
        for folder in reversed(target.parents):
            if folder.is_relative_to(tmp) and folder not in folders:
                folder.mkdir(mode=0o700, exist_ok=True)
                folders.add(folder)
        try:
            _fetch(store, key, size, target)
        except BlobNotFound:
            raise FilesError(
                f"Files {files.digest[:12]}: the blob {key} of {rel!r} is missing from "
                f"{store.url} (deleted by gc, or a different SHIPYARD_STORE_URL?)"
            ) from None
        except FilesError as exc:
            raise FilesError(f"Files {files.digest[:12]}, file {rel!r}: {exc}") from None
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        os.chmod(folder, _DIR_MODE)


def remove_stale(home: Path) -> int:
    """Remove the temp directories that loaders killed mid-way left under ``home/files``
    (those of a tree nobody is materialising now: its lock is free). Returns how many."""
    folder = home / "files"
    try:
        temps = [p for p in folder.iterdir() if p.name.startswith(".tmp-") and p.is_dir()]
    except FileNotFoundError:
        return 0
    removed = 0
    for tmp in temps:
        prefix = tmp.name[len(".tmp-") :].partition("-")[0]
        locks = list(folder.glob(f".{prefix}*.lock"))
        busy = False
        for lock in locks:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy = True
            finally:
                os.close(fd)
        if not busy:
            _discard(tmp)
            removed += 1
    return removed


__all__ = ["materialise", "remove_stale"]
