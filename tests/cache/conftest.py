"""Every cache test gets its own SHIPYARD_HOME (so its own key pair and LMDB cache), and no
cache URL or signing, verifying or old HMAC key leaks in from the caller's environment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    for name in (
        "SHIPYARD_CACHE_URL",
        "SHIPYARD_CACHE_SIGNING_KEY",
        "SHIPYARD_CACHE_VERIFY_KEY",
        "SHIPYARD_CACHE_HMAC_KEY",
        "SHIPYARD_DB_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    return home


@pytest.fixture(params=["memory", "lmdb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh cache of each embedded kind."""
    if request.param == "memory":
        from shipyard.cache.backends import memory

        name = uuid.uuid4().hex
        yield f"memory://{name}"
        memory.reset(name)
    else:
        yield f"lmdb://{tmp_path / 'lmdb'}"
