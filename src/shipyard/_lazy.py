"""Lazy exports for a package's ``__init__``: each name's module is imported on first use,
so importing the package stays cheap (``import shipyard``, ``shipyard.client``...)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str,
    names: Mapping[str, str],
    listed: Iterable[str],
    modules: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``: ``names`` maps an
    attribute to the module defining it, ``modules`` an attribute to a module itself;
    ``listed`` is what ``dir()`` shows."""
    shown = sorted(listed)

    def __getattr__(name: str) -> Any:
        if modules and name in modules:
            return importlib.import_module(modules[name])
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return shown

    return __getattr__, __dir__
