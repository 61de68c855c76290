"""What every test in tests/ray shares: a private SHIPYARD_HOME with SQLite and a file://
store, and no executor or Ray address inherited from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SQLite and a file:// store under a private SHIPYARD_HOME."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "SHIPYARD_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SHIPYARD_RAY_ADDRESS", raising=False)
    return home
