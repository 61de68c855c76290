"""What the UI tests share (the fixture is in conftest.py): the flow whose real runs the UI
shows (a foreach with a retried task, logs, artifacts, a registered model), the environment
record, and helpers for a host over the same stores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.testclient import TestClient

from shipyard.client import Run
from shipyard.keys import Guard, KeyStore
from shipyard.store.blobs import BlobStore
from shipyard.store.meta import MetaStore
from shipyard.ui import standalone

if TYPE_CHECKING:
    from shipyard.serve.host import Host

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


def host_over(env: UIEnv, **options: Any) -> Host:
    """The host of ``shipyard serve`` (not started: no lifespan, no workers) over ``env``'s
    SHIPYARD_HOME, so its UI has the runs and models of ``env``; close it with
    :func:`close_host`."""
    from shipyard._app import host_app

    return host_app(**options)


def close_host(host: Host) -> None:
    """Close what the host opened (its lifespan would, had it started)."""
    for close in reversed(host.on_close):
        close()


def seed_service(host: Host, service: str, *, versions: int = 1) -> None:
    """Record ``versions`` versions of ``service`` (the last one live) without starting
    workers: what the deployments pages read."""
    from shipyard.serve.deployments import VersionStatus

    for _ in range(versions):
        version = host.admin.store.add_version(
            service, entry="svc.py:Echo", code_key="0" * 64, replicas=1, env={}, pins={},
            created_by="tester",
        )  # fmt: skip
        host.admin.store.mark(service, version.version, VersionStatus.LIVE)


def seed_traffic(host: Host, service: str, now: float) -> None:
    """Three samples of the host's history, 10 s apart, ending at ``now``: 5 then 20 calls
    of ``service`` (one of them a 500)."""
    host.history.sample(now=now - 20)
    counters = host.metrics.endpoint(service, "echo")
    for _ in range(5):
        counters.count(200)
        counters.latency.observe(0.004)
    host.history.sample(now=now - 10)
    for code in [200] * 19 + [500]:
        counters.count(code)
        counters.latency.observe(0.02)
    host.history.sample(now=now)
