"""The local-directory blob backend: ``root/<key[:2]>/<key>``, written atomically.

Blobs hold artifacts, logs and code snapshots, so they are the owner's alone: directories
are created 0700 and files 0600 (modes given at creation; the umask can only narrow them).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shipyard._proc import pid_alive
from shipyard.store.blobs import BlobNotFound, check_key, check_range, is_key

_TMP_PREFIX = ".tmp-"
#: the machine a temp file's writer runs on, in its name: gc may judge a writer's pid only
#: on its own machine (a blob directory can be shared over NFS)
_HOST = os.uname().nodename.replace("/", "_") or "unknown"
#: os.write moves at most ~2 GiB per call on Linux; slice bigger chunks so each call is whole
_MAX_WRITE = 1 << 30


def temp_name() -> str:
    """A temp file's name: ``.tmp-<host>-<writer pid>-<random>``."""
    return f"{_TMP_PREFIX}{_HOST}-{os.getpid()}-{secrets.token_hex(8)}"


def _writer_gone(name: str) -> bool:
    """True if the temp file's writer ran on this machine and is no longer running."""
    host, _, rest = name[len(_TMP_PREFIX) :].rpartition("-")[0].rpartition("-")
    if host != _HOST or not rest.isdigit():
        return False
    return not pid_alive(int(rest))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refused(exc: OSError, path: Path) -> OSError:
    """The same error (class and errno), naming the blob's path: an ``os.write`` that found
    the disk full names no file."""
    return OSError(exc.errno, exc.strerror, str(path))


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

    def path(self, key: str) -> Path:
        """Where the blob ``key`` is (or would be) on disk: file artifacts link to it."""
        return self._path(key)

    def put(self, key: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """Write ``chunks`` to a temp file next to the final name, fsync, rename, fsync the dir.

        A reader (or a process killed mid-write) can only ever see the whole blob or none.
        A refused write (disk full, read-only directory) raises :class:`OSError` naming the
        blob's path, the temp file removed.
        """
        final = self._path(key)
        try:
            # refresh the mtime: gc spares young blobs, and this one is about to be referenced
            os.utime(final)
            return False
        except FileNotFoundError:
            pass
        except OSError as exc:  # e.g. a read-only file system
            raise _refused(exc, final) from None
        try:
            self._write(final, chunks)
        except OSError as exc:
            raise _refused(exc, final) from None
        return True

    def _write(self, final: Path, chunks: Iterable[bytes | memoryview]) -> None:
        folder = final.parent
        if not folder.is_dir():
            if not self.root.is_dir():
                self.root.parent.mkdir(parents=True, exist_ok=True)
                self.root.mkdir(mode=0o700, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
            _fsync_dir(folder.parent)
        tmp = folder / temp_name()
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

    def remove_temp_files(self, older_than: float, *, dry_run: bool = False) -> tuple[int, int]:
        """Remove what interrupted writes left: every temp file whose writer (on this
        machine, named in the file's name) is gone, and any other not written to for
        ``older_than`` seconds (a live writer's file grows, so its mtime stays fresh).
        Returns how many files and bytes (``dry_run``: would be) removed."""
        cutoff = time.time() - older_than
        count = size = 0
        for folder in self._folders():
            with os.scandir(folder.path) as entries:
                temps = [e for e in entries if e.name.startswith(_TMP_PREFIX) and e.is_file()]
            for entry in temps:
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # its writer finished (renamed it) or gave up
                    continue
                if stat.st_mtime > cutoff and not _writer_gone(entry.name):
                    continue
                if not dry_run:
                    try:
                        os.unlink(entry.path)
                    except FileNotFoundError:
                        continue
                count, size = count + 1, size + stat.st_size
        return count, size

    def _folders(self) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(self.root) as top:
                return [e for e in top if len(e.name) == 2 and e.is_dir()]
        except FileNotFoundError:
            return []

    def list(self) -> Iterator[tuple[str, float]]:
        """Every finished blob; temp files of interrupted writes are not keys and are skipped."""
        for folder in self._folders():
            with os.scandir(folder.path) as entries:
                for entry in entries:
                    if is_key(entry.name) and entry.name[:2] == folder.name and entry.is_file():
                        yield entry.name, entry.stat().st_mtime
