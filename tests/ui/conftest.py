"""Fixtures for the UI tests: a private SHIPYARD_HOME holding one small real run (made with
``run_flow``: a foreach with a retried task, logs, artifacts, a registered model), the UI
app over its stores, and a loopback TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from shipyard.client import Run, _stores
from shipyard.keys import Guard, KeyStore
from shipyard.store.blobs import BlobStore, open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.testing import run_flow, write_flow
from shipyard.ui import standalone

UI_FLOW = """
import sys

from shipyard import FlowSpec, Parameter, current, retry, step


class UiFlow(FlowSpec):
    \"\"\"Square a few numbers, one of them on the second attempt.\"\"\"

    alpha = Parameter("alpha", default=0.5, help="a weight")

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.note = "x" * 50
        print("hello from start")
        self.next(self.work, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @step
    def work(self):
        if self.input == 2 and current.retry_count == 0:
            raise ValueError("flaky item 2")
        self.sq = self.input * self.input
        print(f"square of {self.input} is {self.sq}")
        sys.stderr.write(f"stderr line {self.input}\\n")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        metrics = {"total": float(self.total), "alpha": self.alpha}
        current.register_model("uimodel", {"total": self.total}, metrics=metrics)
"""

LOOPBACK = ("127.0.0.1", 1234)
BASE_URL = "http://127.0.0.1:8002"


@dataclass
class UIEnv:
    home: Path
    meta: MetaStore
    blobs: BlobStore
    keys: KeyStore
    runs: list[Run]  # the run_flow runs, oldest first

    def app(self, *, bind_host: str = "127.0.0.1") -> Starlette:
        return standalone(self.meta, self.blobs, Guard(self.keys, bind_host=bind_host))

    def client(self, *, client: tuple[str, int] = LOOPBACK, **kw: object) -> TestClient:
        return TestClient(self.app(), client=client, base_url=BASE_URL, **kw)  # type: ignore[arg-type]


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
