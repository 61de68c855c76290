from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shipyard.store import context


def load_fakes() -> ModuleType:
    """tests/client/fakes.py, imported by path whatever the tests' package layout."""
    name = "shipyard_test_fakes"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fakes.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(path))
    for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(var, raising=False)
    return path


@pytest.fixture
def fake(home: Path) -> Iterator[Any]:
    fakes = load_fakes()
    runs = fakes.FakeRuns(home)
    yield runs
    runs.close()
    context.reset()
