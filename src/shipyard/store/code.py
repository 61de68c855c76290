"""A run's code snapshot: packed when the run starts, used to load its artifacts anywhere.

The runtime calls :func:`pack_code` with the flow file and the module name it imported the
file under, and stores the bytes as a blob (``run.code_key``). The format is a deterministic
zip (same code, same bytes, same key) of the ``*.py`` files under the flow's import root:
top-level modules, and packages (directories with ``__init__.py``) recursively, skipping
hidden directories, virtualenvs and ``__pycache__``; plus a small manifest.

Reading an artifact whose class lives in the flow file (in a notebook, a service, another
directory) goes through :class:`ClassFinder`: the run's flow module, and any module that is
found nowhere but in the snapshot, are imported from the snapshot, which is extracted once
to ``$SHIPYARD_HOME/code/<code_key>/``.

Errors: :class:`~shipyard.store.errors.CodeSnapshotError` (the client raises its own subclass,
also a ``ClientError``, when it reads an artifact).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from shipyard.store.errors import CodeSnapshotError as CodeSnapshotError  # re-exported

#: the largest snapshot (sum of the packed files' sizes) pack_code accepts
MAX_CODE_BYTES = 5 * 1024 * 1024
MANIFEST = ".shipyard-code.json"
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", "env"}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _import_root(flow_file: Path, module_name: str) -> Path:
    """The directory ``module_name`` is importable from (``a.b.flow`` -> two levels up)."""
    root = flow_file.parent
    packages = module_name.split(".")[:-1]
    for package in reversed(packages):
        if root.name != package or not (root / "__init__.py").is_file():
            return flow_file.parent  # the name does not mirror the layout: pack the file's dir
        root = root.parent
    return root


def _walk(root: Path) -> list[Path]:
    """Top-level ``*.py`` files, and packages recursively."""
    found: list[Path] = []
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            msg = f"cannot read {directory} for the code snapshot: {exc}"
            raise CodeSnapshotError(msg) from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_file() and entry.name.endswith(".py"):
                found.append(Path(entry.path))
            elif (
                entry.is_dir(follow_symlinks=False)
                and entry.name not in _SKIP_DIRS
                and os.path.isfile(os.path.join(entry.path, "__init__.py"))
            ):
                pending.append(Path(entry.path))
    return found


def pack_code(flow_file: Path, module_name: str) -> bytes:
    """Snapshot the flow's code as deterministic zip bytes.

    Raises :class:`CodeSnapshotError` if the flow file is missing or the code is larger than
    :data:`MAX_CODE_BYTES` (the message names the largest files).

    >>> data = pack_code(Path("flows/digits_flow.py"), "digits_flow")  # doctest: +SKIP
    """
    flow_file = Path(flow_file).resolve()
    if not flow_file.is_file():
        raise CodeSnapshotError(f"cannot snapshot the flow's code: {flow_file} is not a file")
    root = _import_root(flow_file, module_name)
    files = _walk(root)
    if flow_file not in files:
        files.append(flow_file)
    sizes = {path: path.stat().st_size for path in files}
    total = sum(sizes.values())
    if total > MAX_CODE_BYTES:
        biggest = sorted(sizes, key=lambda p: -sizes[p])[:3]
        names = ", ".join(f"{p.relative_to(root)} ({sizes[p] // 1024} KiB)" for p in biggest)
        raise CodeSnapshotError(
            f"the code next to {flow_file} is {total / 2**20:.1f} MiB of Python, more than the "
            f"{MAX_CODE_BYTES // 2**20} MiB a run's code snapshot may hold (largest: {names}); "
            "move the flow into a directory of its own, or the big modules into an installed "
            "package"
        )
    manifest = {
        "format": 1,
        "module": module_name,
        "flow_file": flow_file.relative_to(root).as_posix(),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [(MANIFEST, json.dumps(manifest, sort_keys=True).encode())]
        entries += sorted((p.relative_to(root).as_posix(), p.read_bytes()) for p in files)
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _safe_members(archive: zipfile.ZipFile, key: str) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    for info in members:
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts or "\\" in info.filename:
            raise CodeSnapshotError(
                f"code snapshot {key} holds an unsafe path {info.filename!r}; refusing to extract"
            )
    return members


def extract_code(data: bytes | bytearray, key: str, home: Path) -> Path:
    """Extract a snapshot once to ``home/code/<key>`` (atomically: temp dir + rename)."""
    target = home / "code" / key
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                archive.extractall(tmp, members=_safe_members(archive, key))
        except zipfile.BadZipFile as exc:
            raise CodeSnapshotError(f"code snapshot {key} is not a valid archive: {exc}") from exc
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not a lost race with another process: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class _SnapshotFinder(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: finds top-level modules that exist only in snapshots."""

    def __init__(self) -> None:
        self.roots: list[str] = []

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if path is not None or not self.roots:  # submodules resolve through their package
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, list(self.roots))


_finder = _SnapshotFinder()
_import_lock = threading.RLock()


def _add_root(root: Path) -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.append(_finder)
    if str(root) not in _finder.roots:
        _finder.roots.append(str(root))


def _import_from(root: Path, name: str) -> ModuleType:
    """Import top-level module ``name`` from ``root`` (not from wherever sys.path points)."""
    spec = importlib.machinery.PathFinder.find_spec(name, [str(root)])
    if spec is None or spec.loader is None:
        raise CodeSnapshotError(f"the run's code snapshot in {root} has no module {name!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _attribute(module: ModuleType, qualname: str) -> Any:
    obj: Any = module
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AttributeError(
                f"cannot load {module.__name__}.{qualname}: {part!r} is not defined in "
                f"{getattr(module, '__file__', module.__name__)} (was it renamed?)"
            ) from None
    return obj


class ClassFinder:
    """``find_class`` for unpickling a run's artifacts (see ``serialize.decode``).

    ``fetch_root`` extracts the snapshot and returns its directory; it is called at most once,
    and only when a module has to come from the snapshot.
    """

    def __init__(self, flow_module: str | None, fetch_root: Callable[[], Path] | None) -> None:
        self._top = flow_module.partition(".")[0] if flow_module else None
        self._fetch_root = fetch_root
        self._root: Path | None = None

    def root(self) -> Path:
        if self._root is None:
            if self._fetch_root is None:
                raise CodeSnapshotError("this run has no code snapshot")
            self._root = self._fetch_root()
            _add_root(self._root)
        return self._root

    def module(self, name: str) -> ModuleType:
        """The module ``name``, imported from the snapshot when it has to be."""
        loaded = sys.modules.get(name)
        if loaded is not None:
            return loaded
        top = name.partition(".")[0]
        with _import_lock:
            if self._fetch_root is not None and top == self._top and top not in sys.modules:
                _import_from(self.root(), top)
                return importlib.import_module(name)
            try:
                return importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if self._fetch_root is None or exc.name not in (top, name):
                    raise
            self.root()  # now the snapshot finder can see it
            return importlib.import_module(name)

    def __call__(self, module: str, name: str) -> Any:
        return _attribute(self.module(module), name)


__all__ = ["MAX_CODE_BYTES", "ClassFinder", "extract_code", "pack_code"]
