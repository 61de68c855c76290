from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.store import context
from support.fakes import FakeRuns


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(path))
    for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(var, raising=False)
    # the fake runs are tester's: the client's default namespace (user:<you>) then sees them
    monkeypatch.setenv("SHIPYARD_USER", "tester")
    return path


@pytest.fixture
def fake(home: Path) -> Iterator[Any]:
    runs = FakeRuns(home)
    yield runs
    runs.close()
    context.reset()
