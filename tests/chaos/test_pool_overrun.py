"""A pooled call (``@endpoint(concurrency=N)``) that overruns its timeout takes only itself
down: it gets 504, its replica is retired (the calls queued in its pool that had not begun
go to another replica, none runs twice), the retired worker exits without waiting for the
stuck thread, and a new one takes its place. A pooled call that waited for a free thread
past its timeout, but ran less, is no overrun."""

from __future__ import annotations

import collections
import concurrent.futures
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve.hosts import HostProcess
from support.waiting import wait_for

SERVICE = """
import os
import time
from shipyard.serve import Service, endpoint


class PoolOverrun(Service):
    @endpoint(timeout=1.0, concurrency=1)
    def work(self, call: int, seconds: float) -> int:
        print(f"ran {call}", flush=True)  # the worker's log, kept by the host
        time.sleep(seconds)
        return os.getpid()

    @endpoint(timeout=1.0, concurrency=2)
    def pair(self, seconds: float, tag: str = "") -> int:
        if tag:
            print(f"began {tag}", flush=True)
        time.sleep(seconds)
        return os.getpid()

    @endpoint(timeout=10.0)
    def hold(self, seconds: float) -> int:  # inline: holds the worker's event loop
        time.sleep(seconds)
        return os.getpid()
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    root = tmp_path_factory.mktemp("pool-overrun")
    host = HostProcess(root / "home", args=("--ping-timeout", "1")).start()
    try:
        path = root / "pool_overrun_service.py"
        path.write_text(SERVICE)
        host.deploy(f"{path}:PoolOverrun", "pooled", "--replicas", "2")
        host.deploy(f"{path}:PoolOverrun", "lone")
        yield host
    finally:
        host.stop()


def _metric(host: HostProcess, name: str) -> float:
    text = httpx.get(host.url + "/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_pooled_call_waiting_for_a_thread_past_its_timeout_did_not_overrun(
    host: HostProcess,
) -> None:
    # two threads, timeout 1 s: eight calls of 0.6 s run in four turns; the last ones are
    # answered 2.4 s after they were sent (past the host's own 2 s), yet ran 0.6 s each
    (pid,) = host.worker_pids("lone")
    with concurrent.futures.ThreadPoolExecutor(8) as clients:
        answers = list(clients.map(lambda _: host.post("/lone/pair", {"seconds": 0.6}), range(8)))
    assert [(r.status_code, r.json()) for r in answers] == [(200, pid)] * 8
    assert host.worker_pids("lone") == [pid]
    assert _metric(host, 'shipyard_replica_retirements_total{service="lone"}') == 0


def test_a_pooled_call_whose_answer_waits_behind_an_inline_call_did_not_overrun(
    host: HostProcess,
) -> None:
    # the pooled call ends in 0.3 s, but an inline call sent after it holds the worker's
    # loop for 3 s, and with it the pooled call's answer: past the host's 2 s for the pooled
    # call, whose replica is quiet; the held loop is the inline call's to answer for
    (pid,) = host.worker_pids("lone")
    with concurrent.futures.ThreadPoolExecutor(2) as clients:
        pooled = clients.submit(host.post, "/lone/pair", {"seconds": 0.3, "tag": "p1"})
        wait_for(lambda: "began p1\n" in _logs(host, "lone"), "the pooled call to begin")
        inline = clients.submit(host.post, "/lone/hold", {"seconds": 3.0})
        answers = [pooled.result(), inline.result()]
    assert [(r.status_code, r.json()) for r in answers] == [(200, pid)] * 2
    assert host.worker_pids("lone") == [pid]
    assert _metric(host, 'shipyard_replica_retirements_total{service="lone"}') == 0


def test_a_pooled_call_that_overruns_retires_its_replica_and_its_queue_goes_elsewhere(
    host: HostProcess,
) -> None:
    before = set(wait_for(lambda: len(pids := host.worker_pids("pooled")) == 2 and pids, "two"))
    ids = iter(range(1, 100_000))
    lock = threading.Lock()

    def call(seconds: float) -> tuple[int, httpx.Response]:
        with lock:
            call_id = next(ids)
        return call_id, host.post("/pooled/work", {"call": call_id, "seconds": seconds})

    stuck_done = threading.Event()
    answers: list[tuple[int, httpx.Response]] = []

    def caller() -> None:
        while not stuck_done.is_set():
            answers.append(call(0.02))

    with concurrent.futures.ThreadPoolExecutor(7) as clients:
        started = time.monotonic()
        stuck = clients.submit(call, 6.0)
        # the stuck call holds its replica's only thread: fast calls sent to that replica
        # wait in its pool, never begin, and are sent to the other one when it is retired
        wait_for(lambda: "ran 1\n" in _logs(host), "the stuck call to run")
        callers = [clients.submit(caller) for _ in range(6)]
        stuck_id, stuck_answer = stuck.result()
        answered_in = time.monotonic() - started
        stuck_done.set()
        for done in callers:
            done.result()
    assert stuck_answer.status_code == 504, stuck_answer.text
    assert stuck_answer.json()["error"]["type"] == "timeout"
    assert answered_in < 4.0  # at its 1 s timeout (timed by the worker), not its 6 s end
    statuses = collections.Counter(r.status_code for _, r in answers)
    assert statuses == {200: len(answers)}, [r.text for _, r in answers if r.status_code != 200]
    assert _metric(host, 'shipyard_requests_resent_total{service="pooled"}') >= 1
    assert _metric(host, 'shipyard_replica_retirements_total{service="pooled"}') == 1

    # the retired worker exits while its stuck thread still sleeps; a new one takes its place
    retired = {pid for pid in before if pid not in {r.json() for _, r in answers}}
    assert len(retired) == 1
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in retired), "it to exit")
    assert time.monotonic() - started < 6.0  # before the stuck call would have ended

    def replaced() -> bool:
        pids = set(host.worker_pids("pooled"))
        return len(pids) == 2 and len(pids - before) == 1 and not pids & retired

    wait_for(replaced, "the retired replica to be replaced", timeout=60)

    # no call ran twice, and every call ran: each id is in the workers' logs exactly once
    ran = collections.Counter(int(n) for n in re.findall(r"^ran (\d+)$", _logs(host), re.M))
    expected = {stuck_id} | {call_id for call_id, _ in answers}
    assert set(ran) == expected and set(ran.values()) == {1}, ran.most_common(3)


def _logs(host: HostProcess, service: str = "pooled") -> str:
    logs = (host.home / "serve" / "logs" / service).glob("*.log")
    return "".join(path.read_text() for path in logs)
