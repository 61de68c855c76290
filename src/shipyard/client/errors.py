"""Errors raised by the client API.

::

    ClientError                 root of everything the client raises on purpose
    ├── NotFound                (also a KeyError) no flow / run / step / task / artifact by that id
    └── CodeSnapshotError       a flow's code cannot be packed, or a run's snapshot cannot be read

A malformed pathspec string raises a plain :class:`ValueError` showing the expected form.
"""

from __future__ import annotations


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


class CodeSnapshotError(ClientError):
    """A flow's code could not be packed, or a run's code snapshot could not be loaded."""


__all__ = ["ClientError", "CodeSnapshotError", "NotFound"]
