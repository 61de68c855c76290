"""Fixtures for the UI tests (the helpers they use are in ui_support.py, a module with a name of
its own: several test folders have a conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_support import UI_FLOW, UIEnv

from shipyard.keys import KeyStore
from shipyard.store import context as _stores
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.testing import run_flow, write_flow
from support.fakes import FakeRuns


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIEnv]:
    """Two real runs of UiFlow (alpha 0.5, then 0.75: two model versions), made once per
    test module in a private SHIPYARD_HOME."""
    home = tmp_path_factory.mktemp("ui") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHIPYARD_HOME", str(home))
        for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
            patch.delenv(name, raising=False)
        _stores.reset()
        flow = write_flow(UI_FLOW, home.parent, "ui_flow")
        runs = [run_flow(flow, tags=("ui-test",)), run_flow(flow, alpha=0.75, tags=("second",))]
        meta = MetaStore.open()
        keys = KeyStore(meta)
        try:
            yield UIEnv(home, meta, open_blob_store(), keys, runs)
        finally:
            keys.close()
            meta.close()
            _stores.reset()


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A ``FakeRuns`` (tests/support/fakes.py) over a private SHIPYARD_HOME: runs and tasks
    written straight through the stores, e.g. a RUNNING attempt with live log files."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    _stores.reset()
    runs = FakeRuns(tmp_path / "home")
    yield runs
    runs.close()
    _stores.reset()
