"""Persistence: the metadata database (:mod:`.meta`, engines in :mod:`.engine`),
content-addressed blobs (:mod:`.blobs`), artifact encoding (:mod:`.serialize`), code snapshots
(:mod:`.code`), the pathspec grammar (:mod:`.pathspec`) and the process-wide store handles
(:mod:`.context`). Errors: :mod:`.errors`.

The names below are imported on first use, so ``import shipyard.store`` (and ``import
shipyard``) stays cheap: the task processes and the recorder never load SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_exports

#: name -> module; imported on first use
_EXPORTS = {
    "BlobStore": "shipyard.store.blobs",
    "open_blob_store": "shipyard.store.blobs",
    "ClassFinder": "shipyard.store.code",
    "extract_code": "shipyard.store.code",
    "pack_code": "shipyard.store.code",
    "Stores": "shipyard.store.context",
    "default_stores": "shipyard.store.context",
    "read_only": "shipyard.store.engine",
    "ArtifactNotPicklable": "shipyard.store.errors",
    "BlobNotFound": "shipyard.store.errors",
    "CodeSnapshotError": "shipyard.store.errors",
    "MetaStoreError": "shipyard.store.errors",
    "RecordNotFound": "shipyard.store.errors",
    "StoreError": "shipyard.store.errors",
    "WriteRefused": "shipyard.store.errors",
    "Files": "shipyard.store.files",
    "FilesError": "shipyard.store.files",
    "MetaStore": "shipyard.store.meta",
    "Pathspec": "shipyard.store.pathspec",
    "ArtifactRecord": "shipyard.store.records",
    "AttemptRecord": "shipyard.store.records",
    "RunRecord": "shipyard.store.records",
    "RunStatus": "shipyard.store.records",
    "TaskRecord": "shipyard.store.records",
    "TaskStatus": "shipyard.store.records",
    "SqliteWriter": "shipyard.store.sqlite_writer",
}

if TYPE_CHECKING:
    from shipyard.store.blobs import BlobStore as BlobStore
    from shipyard.store.blobs import open_blob_store as open_blob_store
    from shipyard.store.code import ClassFinder as ClassFinder
    from shipyard.store.code import extract_code as extract_code
    from shipyard.store.code import pack_code as pack_code
    from shipyard.store.context import Stores as Stores
    from shipyard.store.context import default_stores as default_stores
    from shipyard.store.engine import read_only as read_only
    from shipyard.store.errors import ArtifactNotPicklable as ArtifactNotPicklable
    from shipyard.store.errors import BlobNotFound as BlobNotFound
    from shipyard.store.errors import CodeSnapshotError as CodeSnapshotError
    from shipyard.store.errors import MetaStoreError as MetaStoreError
    from shipyard.store.errors import RecordNotFound as RecordNotFound
    from shipyard.store.errors import StoreError as StoreError
    from shipyard.store.errors import WriteRefused as WriteRefused
    from shipyard.store.files import Files as Files
    from shipyard.store.files import FilesError as FilesError
    from shipyard.store.meta import MetaStore as MetaStore
    from shipyard.store.pathspec import Pathspec as Pathspec
    from shipyard.store.records import ArtifactRecord as ArtifactRecord
    from shipyard.store.records import AttemptRecord as AttemptRecord
    from shipyard.store.records import RunRecord as RunRecord
    from shipyard.store.records import RunStatus as RunStatus
    from shipyard.store.records import TaskRecord as TaskRecord
    from shipyard.store.records import TaskStatus as TaskStatus
    from shipyard.store.sqlite_writer import SqliteWriter as SqliteWriter

__all__ = [
    "ArtifactNotPicklable",
    "ArtifactRecord",
    "AttemptRecord",
    "BlobNotFound",
    "BlobStore",
    "ClassFinder",
    "CodeSnapshotError",
    "Files",
    "FilesError",
    "MetaStore",
    "MetaStoreError",
    "Pathspec",
    "RecordNotFound",
    "RunRecord",
    "RunStatus",
    "SqliteWriter",
    "StoreError",
    "Stores",
    "TaskRecord",
    "TaskStatus",
    "WriteRefused",
    "default_stores",
    "extract_code",
    "open_blob_store",
    "pack_code",
    "read_only",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
