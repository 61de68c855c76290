"""The retrieval core's errors. One root, :class:`RetrievalError`::

RetrievalError
├── DocumentError      a document cannot be read or parsed (names the file)
├── IndexFormatError   a saved index is missing a file or was written by another version
└── FilterError        a search filter names an unknown operator or a bad value
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Root of the retrieval core's errors."""


class DocumentError(RetrievalError):
    """A document could not be read or parsed; ``path`` names it."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class IndexFormatError(RetrievalError):
    """A saved index cannot be loaded from ``directory``."""

    def __init__(self, message: str, directory: str) -> None:
        super().__init__(f"{directory}: {message}")
        self.directory = directory


class FilterError(RetrievalError):
    """A search filter is malformed; ``key`` names the filter."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(f"filter {key!r}: {message}")
        self.key = key
