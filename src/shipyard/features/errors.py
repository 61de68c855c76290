"""The errors of ``shipyard.features``.

::

    FeatureError                 the root: catch this to catch them all
    ├── FeatureDefinitionError   a @feature function or a FeatureSet is written wrongly
    ├── FeatureComputeError      a feature function raised on a row (names the feature)
    └── FeatureSetMismatch       a service's feature set is not the version its model learnt
"""

from __future__ import annotations

__all__ = [
    "FeatureComputeError",
    "FeatureDefinitionError",
    "FeatureError",
    "FeatureSetMismatch",
]


class FeatureError(Exception):
    """The root of every error raised by ``shipyard.features``."""


class FeatureDefinitionError(FeatureError, ValueError):
    """A ``@feature`` function or a ``FeatureSet`` is written wrongly; the message names it
    (and its file:line where there is one)."""


class FeatureComputeError(FeatureError):
    """A feature function raised while computing a row; ``.feature`` names it."""

    def __init__(self, message: str, *, feature: str) -> None:
        super().__init__(message)
        self.feature = feature


class FeatureSetMismatch(FeatureError):
    """A service uses a version of a feature set other than the one its model was trained
    with, and the set says it must match (``FeatureSet(..., must_match=True)``)."""
