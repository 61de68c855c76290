"""The seams between packages, checked: every package's public surface is a sorted
``__all__`` of names that import, and no package imports another package's private
(``_``-prefixed) module. The layers themselves are import-linter's contract in
pyproject.toml, run by ``make lint``."""

from __future__ import annotations

import importlib
import pkgutil

import grimp
import pytest

import shipyard

PACKAGES = sorted(
    {"shipyard"}
    | {m.name for m in pkgutil.walk_packages(shipyard.__path__, "shipyard.") if m.ispkg}
)


@pytest.mark.parametrize("name", PACKAGES)
def test_a_package_lists_its_public_names_sorted(name: str) -> None:
    package = importlib.import_module(name)
    listed = getattr(package, "__all__", None)
    assert listed is not None, f"{name}/__init__.py has no __all__"
    assert list(listed) == sorted(listed), f"{name}.__all__ is not sorted"
    assert len(set(listed)) == len(listed), f"{name}.__all__ names a name twice"
    missing = [n for n in listed if getattr(package, n, None) is None]
    assert missing == [], f"{name}.__all__ lists names it does not have: {missing}"


def _package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _private(module: str) -> bool:
    return any(p.startswith("_") and not p.startswith("__") for p in module.split(".")[2:])


def test_no_package_imports_another_packages_private_module() -> None:
    graph = grimp.build_graph("shipyard", exclude_type_checking_imports=True, cache_dir=None)
    found = sorted(
        f"{importer} -> {imported}"
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if _private(imported) and _package(importer) != _package(imported)
    )
    assert found == [], "another package's private module is imported (make it public)"
