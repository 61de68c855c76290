"""Artifacts of a task: metadata without unpickling, values loaded lazily on access."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shipyard.client.errors import ClientError, CodeSnapshotError
from shipyard.store import files, serialize
from shipyard.store.blobs import BlobNotFound, read_record
from shipyard.store.code import ClassFinder, extract_code
from shipyard.store.context import Stores
from shipyard.store.errors import CodeSnapshotError as StoreCodeSnapshotError
from shipyard.store.records import ArtifactRecord


class ArtifactLoader:
    """Reads and decodes one run's artifacts, importing classes from the run's code snapshot."""

    def __init__(self, stores: Stores, flow_name: str, run_id: int) -> None:
        self._stores = stores
        self._flow_name = flow_name
        self._run_id = run_id
        self._finder: ClassFinder | None = None

    def _class_finder(self) -> ClassFinder:
        if self._finder is None:
            run = self._stores.meta.get_run(self._flow_name, self._run_id)
            module = run.graph.get("module") if run is not None else None
            code_key = run.code_key if run is not None else None
            fetch = None
            if code_key is not None:
                key = code_key

                def fetch() -> Path:
                    try:
                        data = self._stores.blobs.get(key)
                    except BlobNotFound:
                        raise CodeSnapshotError(
                            f"the code snapshot {key} of {self._flow_name}/{self._run_id} is "
                            "missing from the blob store (deleted by gc?)"
                        ) from None
                    return extract_code(data, key, self._stores.home)

            self._finder = ClassFinder(module if isinstance(module, str) else None, fetch)
        return self._finder

    def load(self, record: ArtifactRecord, where: str) -> Any:
        """The value of ``record`` (``where`` names it in errors)."""
        blobs = self._stores.blobs
        try:
            data = read_record(blobs, record)
        except BlobNotFound:
            raise ClientError(
                f"artifact {where} points at blob {record.key}, which is missing from "
                f"{blobs.url} (deleted by gc, or a different SHIPYARD_STORE_URL?)"
            ) from None
        try:
            value = serialize.decode(data, find_class=self._class_finder())
            return files.bind(value, blobs, self._stores.home)
        except CodeSnapshotError:
            raise
        except StoreCodeSnapshotError as exc:  # from store.code: make it a ClientError too
            raise CodeSnapshotError(str(exc)) from exc
        except (ImportError, AttributeError, ValueError, pickle.UnpicklingError) as exc:
            # e.g. a class that was renamed, a module no longer installed, a corrupt blob
            raise ClientError(
                f"cannot load artifact {where} ({record.type_name}): {type(exc).__name__}: {exc}"
            ) from exc


class DataArtifact:
    """One artifact: ``.name``, ``.sha``, ``.size``, ``.type_name``, ``.preview`` come from the
    metadata; ``.data`` loads (unpickles) the value on first access and keeps it."""

    def __init__(self, record: ArtifactRecord, task_pathspec: str, loader: ArtifactLoader) -> None:
        self._record = record
        self._loader = loader
        self._loaded = False
        self._value: Any = None
        self.pathspec = f"{task_pathspec}:{record.name}"

    @property
    def name(self) -> str:
        """The attribute name."""
        return self._record.name

    @property
    def sha(self) -> str:
        """The content hash (blob key)."""
        return self._record.key

    @property
    def size(self) -> int:
        """Serialized size in bytes, before compression."""
        return self._record.size

    @property
    def type_name(self) -> str:
        """The value's type, e.g. ``numpy.ndarray``."""
        return self._record.type_name

    @property
    def preview(self) -> str:
        """A short description computed when the task wrote it (never by unpickling)."""
        return self._record.preview

    @property
    def encoding(self) -> str:
        """How the blob decodes, e.g. ``pickle5+zstd``."""
        return self._record.encoding

    @property
    def data(self) -> Any:
        """The value (unpickled on first access: the store is trusted code)."""
        if not self._loaded:
            self._value = self._loader.load(self._record, self.pathspec)
            self._loaded = True
        return self._value

    def __repr__(self) -> str:
        return f"DataArtifact({self.pathspec!r}, type={self.type_name}, size={self.size})"


class TaskData:
    """``task.data.<name>``: each artifact is loaded on first access and then kept."""

    def __init__(self, artifacts: dict[str, DataArtifact], task_pathspec: str) -> None:
        self._artifacts = artifacts
        self._pathspec = task_pathspec

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        artifact = self._artifacts.get(name)
        if artifact is None:
            have = ", ".join(sorted(self._artifacts)) or "none (the task has not succeeded)"
            raise AttributeError(
                f"task {self._pathspec} has no artifact {name!r}; its artifacts: {have}"
            )
        return artifact.data

    def __contains__(self, name: object) -> bool:
        return name in self._artifacts

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._artifacts))

    def __dir__(self) -> list[str]:
        return sorted(self._artifacts)

    def __repr__(self) -> str:
        return f"<TaskData {self._pathspec}: {', '.join(sorted(self._artifacts))}>"


__all__ = ["ArtifactLoader", "DataArtifact", "TaskData"]
