"""Errors raised by the stores (metadata database, blobs, artifacts, code snapshots).

::

    StoreError                   root of everything the store raises on purpose
    ├── MetaStoreError           the metadata store refused (bad state, unknown schema revision)
    │   └── RecordNotFound       (also a LookupError) no run / task / attempt with that id
    ├── WriteRefused             a recorder write names a run, task or attempt that is not there
    ├── BlobNotFound             (also a KeyError) no blob under that key
    ├── ArtifactNotPicklable     (also a TypeError) an attribute cannot be pickled
    └── CodeSnapshotError        a flow's code cannot be packed, or a snapshot cannot be read

Each is also importable from the module that raises it (``shipyard.store.meta``,
``.sqlite_writer``, ``.blobs``, ``.serialize``, ``.code``). A malformed blob key or store URL
raises a plain :class:`ValueError` naming the expected form.

This module imports nothing, so that the recorder and the task processes, which avoid
SQLAlchemy, can import it.
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of the store package's exceptions."""


class MetaStoreError(StoreError):
    """The metadata store refused an operation; the message says what and how to fix it."""


class RecordNotFound(MetaStoreError, LookupError):
    """No run, task or attempt with that id."""


class WriteRefused(StoreError):
    """A write that names a run, task or attempt that is not there."""


class BlobNotFound(StoreError, KeyError):
    """No blob under that key."""


class ArtifactNotPicklable(StoreError, TypeError):
    """An attribute could not be pickled. ``.name`` and ``.type_name`` say which."""

    def __init__(self, name: str, type_name: str, reason: str) -> None:
        super().__init__(f"artifact {name!r} of type {type_name} cannot be pickled: {reason}")
        self.name = name
        self.type_name = type_name
        self.reason = reason


class CodeSnapshotError(StoreError):
    """A flow's code could not be packed, or a run's code snapshot could not be loaded."""


__all__ = [
    "ArtifactNotPicklable",
    "BlobNotFound",
    "CodeSnapshotError",
    "MetaStoreError",
    "RecordNotFound",
    "StoreError",
    "WriteRefused",
]
