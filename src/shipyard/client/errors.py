"""Errors raised by the client API.

::

    ClientError                 root of everything the client raises on purpose
    ├── NotFound                (also a KeyError) no flow / run / step / task / artifact by that id
    │   └── NotInNamespace      the run exists, outside the namespace in use (see namespace.py)
    └── CodeSnapshotError       (also the store's CodeSnapshotError) a run's code snapshot
                                cannot be read while loading one of its artifacts

A malformed pathspec string raises a plain :class:`ValueError` showing the expected form.
Packing and extracting snapshots live in :mod:`shipyard.store.code`, which raises
:class:`shipyard.store.errors.CodeSnapshotError`, the base of this package's one: catch that
to handle both.
"""

from __future__ import annotations

from shipyard.store import errors as _store


class ClientError(Exception):
    """Root of the client package's exceptions."""


class NotFound(ClientError, KeyError):
    """Nothing exists under ``pathspec``; the message says what does exist."""

    def __init__(self, pathspec: str, message: str) -> None:
        super().__init__(message)
        self.pathspec = pathspec
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class NotInNamespace(NotFound):
    """The run exists but is not in the namespace in use (Metaflow's namespace mismatch)."""

    def __init__(self, pathspec: str, namespace: str | None) -> None:
        super().__init__(
            pathspec,
            f"{pathspec} is not in the namespace {namespace!r}; see every run with "
            "shipyard.namespace(None), or switch with shipyard.namespace('user:NAME')",
        )
        self.namespace = namespace


class CodeSnapshotError(ClientError, _store.CodeSnapshotError):
    """A run's code snapshot could not be loaded to read one of its artifacts."""


__all__ = ["ClientError", "CodeSnapshotError", "NotFound", "NotInNamespace"]
