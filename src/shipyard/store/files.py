"""File artifacts: a directory (or one file) stored as-is, for services that memory-map it.

``self.docs = Files("/tmp/build/index")`` in a step stores every file of the directory
**uncompressed** as a blob of its own, keyed by the file's SHA-256 (a rebuild that changes one
file uploads one file); the artifact itself is a small JSON *manifest*
(``relative path -> (sha256, size)``), whose SHA-256 is the :attr:`Files.digest`.

Reading it back anywhere (a later step, the client, ``Model(...).load()`` in a service)
gives a :class:`Files` whose :attr:`~Files.path` is a read-only local directory,
``SHIPYARD_HOME/files/<digest>``, materialised once per host: the first reader builds it in a
temp directory, checks every file's digest and renames it into place (others wait on a lock
and reuse it). On a local blob store the files are reflinked or hard-linked, not copied,
when the file system allows it. A host materialises the files of the models its workers ask
for, because an isolated worker sees ``SHIPYARD_HOME`` read-only.

Blob gc keeps the file blobs of every manifest it keeps (:func:`file_keys`).

Errors: :class:`FilesError` (a ``ValueError`` and a ``StoreError``) names the path and,
once known, the artifact.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from shipyard.store.blobs import BlobNotFound, check_key
from shipyard.store.errors import StoreError

if TYPE_CHECKING:
    from shipyard.store.blobs import BlobStore

#: the encoding of a manifest blob (``ArtifactRecord.encoding``)
ENCODING = "files"
#: the manifest's format (in the manifest, so a future change can be told apart)
FORMAT = 1
#: how much of a file is read or written at a time: memory stays flat whatever the size
CHUNK = 8 << 20
#: Linux's FICLONE ioctl (_IOW(0x94, 9, int)): a copy-on-write clone of a whole file
_FICLONE = 0x40049409
_FILE_MODE = 0o444
_DIR_MODE = 0o555

Manifest = dict[str, tuple[str, int]]


class FilesError(StoreError, ValueError):
    """A file artifact cannot be stored or materialised; the message names the path."""


def _size_text(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def _walk(root: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, absolute path)`` of every file under ``root``, sorted; refuses
    symlinks that leave ``root``, symlinked directories and special files."""
    found: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(root, onerror=_raise_walk_error):
        here = Path(folder)
        for name in sorted(dirs):
            path = here / name
            if path.is_symlink():
                target = path.resolve()
                where = "outside the directory" if not target.is_relative_to(root) else "inside"
                raise FilesError(
                    f"{path} is a symlink to the directory {target} ({where}): a file artifact "
                    "follows no symlinked directories; copy it in, or store it as its own Files"
                )
        for name in names:
            path = here / name
            found.append((path.relative_to(root).as_posix(), _regular(path, root)))
    found.sort()
    return found


def _raise_walk_error(exc: OSError) -> None:
    raise FilesError(f"cannot read {exc.filename}: {exc.strerror}") from exc


def _regular(path: Path, root: Path) -> Path:
    """``path`` if it is a regular file (or a symlink to one inside ``root``), else raise."""
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(root):
            raise FilesError(
                f"{path} is a symlink to {target}, outside {root}: a file artifact holds only "
                "what is inside its directory; copy the file in instead"
            )
        path = target
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise FilesError(f"{path} is a broken symlink or vanished while being listed") from None
    if not stat.S_ISREG(mode):
        kind = "directory" if stat.S_ISDIR(mode) else "special file (fifo, socket or device)"
        raise FilesError(f"{path} is a {kind}: a file artifact holds only regular files")
    return path


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while n := f.readinto(view):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def manifest_bytes(manifest: Manifest) -> bytes:
    """The canonical JSON of a manifest (its SHA-256 is the tree's digest)."""
    body = {"format": FORMAT, "files": {k: [d, s] for k, (d, s) in sorted(manifest.items())}}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _check_relative(name: object) -> str:
    """A manifest's path must stay inside the directory it is materialised in."""
    if not isinstance(name, str) or not name:
        raise FilesError(f"a file artifact's manifest names an invalid path {name!r}")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in name:
        raise FilesError(f"a file artifact's manifest names the unsafe path {name!r}")
    return name


def parse_manifest(payload: bytes | bytearray | memoryview) -> Manifest:
    """The manifest a blob holds; raises :class:`FilesError` for anything malformed."""
    try:
        body = json.loads(bytes(payload))
        files = body["files"]
        if body.get("format") != FORMAT or not isinstance(files, dict):
            raise ValueError(f"format {body.get('format')!r}")
        return {
            _check_relative(name): (check_key(entry[0]), int(entry[1]))
            for name, entry in files.items()
        }
    except FilesError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise FilesError(f"not a file-artifact manifest (format {FORMAT}): {exc}") from None


class Files:
    """A directory (or one file) stored as a file artifact; see the module docstring.

    >>> self.docs = Files("/tmp/build/index")        # doctest: +SKIP
    >>> index = Model("docs-index").load()             # doctest: +SKIP
    >>> np.load(index / "vectors.npy", mmap_mode="r")  # doctest: +SKIP

    ``path`` is a directory; ``Files("model.onnx")`` (one file) is a directory holding
    ``model.onnx``, and :attr:`file` is that file's path.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        given = Path(path)
        self._root: Path | None
        try:
            root = given.resolve(strict=True)
        except (FileNotFoundError, RuntimeError):
            raise FilesError(f"Files({str(path)!r}): no such file or directory") from None
        except OSError as exc:
            raise FilesError(f"Files({str(path)!r}): {exc.strerror}") from None
        if root.is_dir():
            self._sources = _walk(root)
            self._root = root
        else:
            self._sources = [(root.name, _regular(root, root.parent))]
            self._root = root.parent
        self._manifest: Manifest | None = None
        self._digest: str | None = None
        self._store: BlobStore | None = None
        self._home: Path | None = None
        self._path: Path | None = None

    @classmethod
    def from_manifest(
        cls, manifest: Manifest, *, store: BlobStore | None = None, home: Path | None = None
    ) -> Files:
        """A stored tree, materialised from ``store`` (default: the settings' blob store)
        under ``home`` (default: ``SHIPYARD_HOME``) when :attr:`path` is first read."""
        self = cls.__new__(cls)
        self._sources = []
        self._root = None
        self._manifest = {_check_relative(k): v for k, v in manifest.items()}
        self._digest = None
        self._store, self._home, self._path = store, home, None
        return self

    # --- what it holds ----------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        """``relative path -> (sha256, size)`` (hashes a source directory on first use)."""
        if self._manifest is None:
            self._manifest = {name: _hash_file(path) for name, path in self._sources}
        return dict(self._manifest)

    @property
    def digest(self) -> str:
        """The SHA-256 of the manifest: the content address of the whole tree."""
        if self._digest is None:
            self._digest = hashlib.sha256(manifest_bytes(self.manifest)).hexdigest()
        return self._digest

    @property
    def size(self) -> int:
        """The total bytes of the files."""
        return sum(size for _, size in self.manifest.values())

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def stored(self) -> bool:
        """True for a tree read back from the store; False for one made from a local path."""
        return self._root is None

    def describe(self) -> str:
        """``3 files, 1.2 MB, sha256 1a2b3c4d5e6f``: what listings show instead of a repr."""
        count = len(self)
        noun = "file" if count == 1 else "files"
        return f"{count} {noun}, {_size_text(self.size)}, sha256 {self.digest[:12]}"

    # --- where it is ------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """A local directory holding the files: the source directory for a tree made in
        this step, else ``SHIPYARD_HOME/files/<digest>`` (read-only), materialised on first
        use."""
        if self._root is not None:
            return self._root
        if self._path is None:
            self._path = materialise(self, self._store, self._home)
        return self._path

    @property
    def file(self) -> Path:
        """The path of the only file (``Files("model.onnx")``); FilesError otherwise."""
        names = list(self.manifest)
        if len(names) != 1:
            raise FilesError(
                f"Files {self.digest[:12]} holds {len(names)} files, not one: "
                "use .path / 'name' instead of .file"
            )
        return self.path / names[0]

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Files) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        where = f" from {str(self._root)!r}" if self._root is not None else ""
        return f"<Files{where}: {self.describe()}>"

    def __reduce__(self) -> Any:
        # gc finds the file blobs through the artifacts whose encoding is "files": a Files
        # pickled inside another value would leave its files unprotected, so it may not be.
        raise TypeError(
            "a Files must be an artifact of its own (self.docs = Files(path)), not inside "
            "another value (a list, a dict, an object)"
        )

    def __copy__(self) -> Files:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Files:
        return self


# --- storing -------------------------------------------------------------------------------
def _reading(path: Path, digest: Any) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            yield chunk


def upload(store: BlobStore, files: Files, *, name: str = "<files>") -> None:
    """Write every file of a tree made from a local path to ``store`` under its SHA-256
    (skipping those the store has), streaming; a stored tree has nothing to write. Raises
    :class:`FilesError` naming the artifact ``name`` and the file."""
    if files.stored:
        return
    manifest = files.manifest
    for rel, source in files._sources:
        key, size = manifest[rel]
        digest = hashlib.sha256()
        try:
            written = store.put(key, _reading(source, digest))
        except FileNotFoundError:
            raise FilesError(f"artifact {name!r}: {source} vanished before it was stored") from None
        if written and digest.hexdigest() != key:
            store.delete(key)
            raise FilesError(
                f"artifact {name!r}: {source} changed while it was being stored; "
                "write the files before assigning Files(...), and leave them alone"
            )


# --- materialising ---------------------------------------------------------------------------
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


def _copy_local(source: Path, target: Path) -> None:
    with open(source, "rb", buffering=0) as src, open(target, "xb", buffering=0) as dst:
        while chunk := src.read(CHUNK):
            dst.write(chunk)


def _copy_remote(store: BlobStore, key: str, size: int, target: Path) -> None:
    """Ranged reads of at most :data:`CHUNK` bytes each: memory stays flat."""
    if size == 0:
        store.get_range(key, 0, 0)  # BlobNotFound if it is not there
    with open(target, "xb", buffering=0) as dst:
        offset = 0
        while offset < size:
            piece = store.get_range(key, offset, min(CHUNK, size - offset))
            if not piece:
                raise FilesError(f"blob {key} in {store.url} is shorter than its {size} bytes")
            dst.write(piece)
            offset += len(piece)


def _fetch(store: BlobStore, key: str, size: int, target: Path) -> None:
    local = _local_blob(store, key)
    if local is not None:
        if not local.is_file():
            raise BlobNotFound(f"no blob {key!r} in {store.url}")
        if not _clone(local, target):
            _copy_local(local, target)
    else:
        _copy_remote(store, key, size, target)
    os.chmod(target, _FILE_MODE)
    found, length = _hash_file(target)
    if found != key or length != size:
        raise FilesError(
            f"blob {key} in {store.url} is corrupt: its bytes hash to {found} ({length} bytes, "
            f"{size} expected)"
        )


def _make_writable(tree: Path) -> None:
    for folder, _, _ in os.walk(tree):
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)


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
        os.rename(tmp, target)
    except BaseException:
        _make_writable(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
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


def bind(value: Any, store: BlobStore, home: Path | None = None) -> Any:
    """``value``, and if it is a stored :class:`Files`, told which store (and home) to
    materialise from: a loader calls this with the store it read the manifest from."""
    if isinstance(value, Files) and value.stored and value._store is None:
        value._store, value._home = store, home
    return value


# --- gc ----------------------------------------------------------------------------------------
def file_keys(store: BlobStore, manifest_keys: Iterable[str]) -> set[str]:
    """The blob keys of the files of these manifests (gc keeps them with their manifests).
    A manifest missing from the store protects nothing (nothing can materialise it)."""
    from shipyard.store.serialize import manifest_payload

    keys: set[str] = set()
    for key in manifest_keys:
        try:
            data = store.get(key)
        except BlobNotFound:
            continue
        keys.update(entry[0] for entry in parse_manifest(manifest_payload(data)).values())
    return keys


__all__ = [
    "CHUNK",
    "ENCODING",
    "Files",
    "FilesError",
    "Manifest",
    "bind",
    "file_keys",
    "manifest_bytes",
    "materialise",
    "parse_manifest",
    "upload",
]
