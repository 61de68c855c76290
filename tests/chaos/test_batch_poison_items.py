"""A poison item in a batched endpoint, through a real host: 20 concurrent callers share
batches, one sends an item the model raises on. Only that caller fails (500 with an error
id); the other 19 get their answers (before: 5-9 of them failed with it)."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import httpx
import pytest

from serve.hosts import HostProcess

SERVICE = """
import time
from shipyard.serve import Service, endpoint


class Scorer(Service):
    @endpoint(batch=True, max_batch_size=32, max_wait_ms=20)
    def score(self, xs: list[float]) -> list[float]:
        time.sleep(0.05)  # a model call: the callers that arrive meanwhile form the next batch
        if any(x < 0 for x in xs):
            raise ValueError("the model cannot score a negative x")
        return [2 * x for x in xs]
"""

CALLERS = 20
BAD = 7


@pytest.fixture(name="host", scope="module")
def host_fixture(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("poison-items")
    host = HostProcess(home / "home").start()
    try:
        path = home / "scorer_service.py"
        path.write_text(SERVICE)
        host.deploy(f"{path}:Scorer", "scorer")
        yield host
    finally:
        host.stop()


def test_one_poison_item_fails_only_its_caller(host: HostProcess) -> None:
    start = threading.Barrier(CALLERS)

    def call(i: int) -> httpx.Response:
        start.wait(timeout=30)
        return httpx.post(f"{host.url}/scorer/score", json={"xs": [-1.0 if i == BAD else i, i]})

    for _round in range(3):  # three rounds: the bad caller lands in a different spot each time
        with concurrent.futures.ThreadPoolExecutor(CALLERS) as pool:
            replies = list(pool.map(call, range(CALLERS)))
        failed = [i for i, r in enumerate(replies) if r.status_code != 200]
        assert failed == [BAD], [(r.status_code, r.text) for r in replies]
        error = replies[BAD].json()["error"]
        assert replies[BAD].status_code == 500 and error["type"] == "internal_error"
        assert error["error_id"]
        answers = [r.json() for i, r in enumerate(replies) if i != BAD]
        assert answers == [[2.0 * i, 2.0 * i] for i in range(CALLERS) if i != BAD]
    # the callers did share calls: the 57 answers came from batches larger than one request
    metrics = httpx.get(f"{host.url}/metrics").text
    total = _sample(metrics, "shipyard_batch_size_sum")
    count = _sample(metrics, "shipyard_batch_size_count")
    assert count == 3 * (CALLERS - 1) and total > 2 * count
    # the workers' extra calls that told the bad request apart are in the host's /metrics
    assert _sample(metrics, "shipyard_batch_extra_calls_total") >= 2


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + "{") and 'service="scorer"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")
