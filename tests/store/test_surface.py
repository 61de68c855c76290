"""The store package's surface: its names import lazily, from the module that defines them."""

from __future__ import annotations

import subprocess
import sys

import shipyard.store
from shipyard.store import context, errors, meta


def test_importing_the_package_and_a_light_module_stays_cheap() -> None:
    code = (
        "import sys, shipyard.store, shipyard.store.errors, shipyard.store.records; "
        "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'alembic'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_package_names_are_the_modules_objects() -> None:
    assert shipyard.store.MetaStore is meta.MetaStore
    assert shipyard.store.StoreError is errors.StoreError
    assert shipyard.store.default_stores is context.default_stores
    assert set(dir(shipyard.store)) >= set(shipyard.store.__all__)
