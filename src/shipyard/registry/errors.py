"""Errors and warnings raised by the model registry.

::

    RegistryError              root of everything the registry raises on purpose
    ├── ModelSpecError         (also a ValueError) a malformed name, alias, version, metric, tag
    └── ModelNotFound          (also a LookupError) no model, version or alias by that name;
                               the message lists what exists

    ModelVersionWarning        (a UserWarning) a model is loaded under a different major.minor
                               of Python or of a library it was trained with
"""

from __future__ import annotations


class RegistryError(Exception):
    """Root of the registry's exceptions; the message says what was wrong and how to fix it."""


class ModelSpecError(RegistryError, ValueError):
    """A model name, alias, version spec, metric or tag is malformed."""


class ModelNotFound(RegistryError, LookupError):
    """No model, version or alias by that name; ``.spec`` is what was asked for."""

    def __init__(self, spec: str, message: str) -> None:
        super().__init__(message)
        self.spec = spec
        self.message = message

    def __str__(self) -> str:
        return self.message


class ModelVersionWarning(UserWarning):
    """The model was trained with another major.minor of Python or a library than is here."""


__all__ = ["ModelNotFound", "ModelSpecError", "ModelVersionWarning", "RegistryError"]
