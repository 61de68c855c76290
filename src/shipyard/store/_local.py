"""The local-directory blob backend: ``root/<key[:2]>/<key>``, written atomically.

Blobs hold artifacts, logs and code snapshots, so they are the owner's alone: directories
are created 0700 and files 0600 (modes given at creation; the umask can only narrow them).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shipyard.store.blobs import BlobNotFound, check_key, check_range, is_key

_TMP_PREFIX = ".tmp-"
#: os.write moves at most ~2 GiB per call on Linux; slice bigger chunks so each call is whole
_MAX_WRITE = 1 << 30


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, chunk: bytes | memoryview) -> None:
    view = memoryview(chunk)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    while view:
        written = os.write(fd, view[:_MAX_WRITE])
        view = view[written:]


class LocalBlobStore:
    """Blobs as files under ``root``; see :class:`shipyard.store.blobs.BlobStore`."""

    def __init__(self, root: Path) -> None:
        if not root.is_absolute():
            raise ValueError(f"blob store directory {str(root)!r} must be an absolute path")
        self.root = root
        self.url = f"file://{root}"

    @classmethod
    def from_url(cls, url: str) -> LocalBlobStore:
        """Build from ``file:///abs/dir`` (``file://localhost/abs/dir`` also accepted)."""
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(
                f"unsupported blob store URL {url!r}: a file URL needs an absolute path, "
                "e.g. file:///home/me/.shipyard/blobs"
            )
        return cls(Path(unquote(parts.path)))

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key

    def put(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """Write ``chunks`` to a temp file next to the final name, fsync, rename, fsync the dir.

        A reader (or a process killed mid-write) can only ever see the whole blob or none.
        """
        final = self._path(key)
        try:
            # refresh the mtime: gc spares young blobs, and this one is about to be referenced
            os.utime(final)
            return False
        except FileNotFoundError:
            pass
        folder = final.parent
        if not folder.is_dir():
            if not self.root.is_dir():
                self.root.parent.mkdir(parents=True, exist_ok=True)
                self.root.mkdir(mode=0o700, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
            _fsync_dir(folder.parent)
        tmp = folder / f"{_TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                for chunk in chunks:
                    _write_all(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
        return True

    def _open(self, key: str) -> int:
        try:
            return os.open(self._path(key), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFound(f"no blob {key!r} in {self.url}") from None

    def get(self, key: str) -> bytearray:
        """Read the whole file with ``readinto`` into one preallocated ``bytearray``."""
        fd = self._open(key)
        with open(fd, "rb", buffering=0, closefd=True) as f:
            size = os.fstat(fd).st_size
            data = bytearray(size)
            view = memoryview(data)
            pos = 0
            while pos < size:
                n = f.readinto(view[pos:])
                if not n:
                    raise OSError(f"blob {key!r} in {self.url} shrank while being read")
                pos += n
            view.release()
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes from ``start``; fewer at the end of the blob."""
        check_range(start, length)
        fd = self._open(key)
        try:
            parts: list[bytes] = []
            pos, end = start, start + length
            while pos < end:
                part = os.pread(fd, min(end - pos, _MAX_WRITE), pos)
                if not part:
                    break
                parts.append(part)
                pos += len(part)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        """Remove the blob; no error if absent."""
        self._path(key).unlink(missing_ok=True)

    def list(self) -> Iterator[tuple[str, float]]:
        """Every finished blob; temp files of interrupted writes are not keys and are skipped."""
        try:
            with os.scandir(self.root) as top:
                folders = [e for e in top if len(e.name) == 2 and e.is_dir()]
        except FileNotFoundError:
            return
        for folder in folders:
            with os.scandir(folder.path) as entries:
                for entry in entries:
                    if is_key(entry.name) and entry.name[:2] == folder.name and entry.is_file():
                        yield entry.name, entry.stat().st_mtime
