"""The package's public surface: sorted, importable, lazy."""

from __future__ import annotations

import subprocess
import sys

import shipyard


def test_all_is_sorted_and_every_name_imports() -> None:
    assert shipyard.__all__ == sorted(shipyard.__all__)
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None
    assert set(dir(shipyard)) >= set(shipyard.__all__)


def test_unknown_names_raise_attribute_error() -> None:
    try:
        shipyard.Nope  # noqa: B018
    except AttributeError as exc:
        assert "Nope" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_is_lazy() -> None:
    heavy = ("sqlalchemy", "rich", "click", "numpy")
    code = f"import sys, shipyard; print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
