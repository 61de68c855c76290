"""One call must not take its neighbours down. An async call that overruns its timeout is
cancelled by its worker (504), the worker and its other calls stay; a sync call that overruns
gets 504 and its replica is retired: the calls queued behind it go to another replica, none
runs twice, and the retired worker is replaced once its call ended. A worker that does not
answer health pings gets no new call while another replica can take it, and all of them
when none can."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve.hosts import HostProcess
from support.waiting import wait_for

SERVICE = """
import asyncio
import os
import time
from shipyard.serve import Service, endpoint


class Overrun(Service):
    @endpoint(timeout=0.5)
    async def nap(self, seconds: float) -> int:
        await asyncio.sleep(seconds)
        return os.getpid()

    @endpoint(timeout=2.0)
    def work(self, call: int, seconds: float) -> int:
        print(f"ran {call}", flush=True)  # the worker's log, kept by the host
        time.sleep(seconds)
        return os.getpid()

    @endpoint
    def pid(self) -> int:
        return os.getpid()
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    root = tmp_path_factory.mktemp("overrun")
    host = HostProcess(root / "home", args=("--ping-timeout", "1")).start()
    try:
        path = root / "overrun_service.py"
        path.write_text(SERVICE)
        host.deploy(f"{path}:Overrun", "solo")
        host.deploy(f"{path}:Overrun", "pair", "--replicas", "2")
        yield host
    finally:
        host.stop()


def _metric(host: HostProcess, name: str) -> float:
    text = httpx.get(host.url + "/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _two_ready(host: HostProcess, service: str) -> list[int]:
    def ready() -> list[int] | None:
        pids = host.worker_pids(service)
        return pids if len(pids) == 2 else None

    return wait_for(ready, f"two ready replicas of {service}", timeout=60)


def test_an_async_call_that_overruns_is_cancelled_and_its_neighbours_answered(
    host: HostProcess,
) -> None:
    (pid,) = host.worker_pids("solo")
    seconds = [5.0] + [0.05] * 7
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        answers = list(pool.map(lambda s: host.post("/solo/nap", {"seconds": s}), seconds))
    slow, *fast = answers
    assert slow.status_code == 504, slow.text
    error = slow.json()["error"]
    assert error["type"] == "timeout" and "cancelled" in error["message"], error
    assert time.monotonic() - started < 4  # cancelled at 0.5 s, not after the 5 s sleep
    assert [r.status_code for r in fast] == [200] * 7
    assert {r.json() for r in fast} == {pid}
    # the worker stayed: same process, nothing retired, and it keeps answering
    assert host.post("/solo/pid", {}).json() == pid
    assert host.worker_pids("solo") == [pid]
    assert _metric(host, 'shipyard_replica_retirements_total{service="solo"}') == 0


def test_a_sync_call_that_overruns_retires_its_replica_and_its_queue_goes_elsewhere(
    host: HostProcess,
) -> None:
    before = set(_two_ready(host, "pair"))
    ids = iter(range(1, 100_000))
    lock = threading.Lock()

    def call(seconds: float) -> tuple[int, httpx.Response]:
        with lock:
            call_id = next(ids)
        body = {"call": call_id, "seconds": seconds}
        return call_id, host.post("/pair/work", body)

    stuck_done = threading.Event()
    answers: list[tuple[int, httpx.Response]] = []

    def caller() -> None:
        while not stuck_done.is_set():
            answers.append(call(0.02))

    with concurrent.futures.ThreadPoolExecutor(7) as pool:
        stuck = pool.submit(call, 4.0)
        # the slow call first; the fast ones queued right behind it are timed out with it,
        # and still sent elsewhere: the worker says it never started them
        time.sleep(0.05)
        callers = [pool.submit(caller) for _ in range(6)]
        stuck_id, stuck_answer = stuck.result()
        stuck_done.set()
        for done in callers:
            done.result()
    assert stuck_answer.status_code == 504, stuck_answer.text
    assert stuck_answer.json()["error"]["type"] == "timeout"
    statuses = collections.Counter(r.status_code for _, r in answers)
    retirements = _metric(host, 'shipyard_replica_retirements_total{service="pair"}')
    assert statuses == {200: len(answers)}, (
        [r.text for _, r in answers if r.status_code != 200],
        retirements,
        [line for line in host.log.read_text().splitlines() if "retir" in line],
    )
    # some fast calls were queued on the retired replica: they were sent again, not failed
    assert _metric(host, 'shipyard_requests_resent_total{service="pair"}') >= 1
    assert _metric(host, 'shipyard_replica_retirements_total{service="pair"}') == 1

    # the retired worker finishes its call, exits, and a new one has taken its place
    retired = {pid for pid in before if pid not in {r.json() for _, r in answers}}

    def replaced() -> bool:
        pids = set(host.worker_pids("pair"))
        return len(pids) == 2 and len(pids - before) == 1 and not pids & retired

    wait_for(replaced, "the retired replica to be replaced", timeout=60)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in retired), "it to exit")

    # no call ran twice, and every call ran: each id is in the workers' logs exactly once
    logs = "".join(p.read_text() for p in (host.home / "serve" / "logs" / "pair").glob("*.log"))
    ran = collections.Counter(int(n) for n in re.findall(r"^ran (\d+)$", logs, re.MULTILINE))
    expected = {stuck_id} | {call_id for call_id, _ in answers}
    assert set(ran) == expected and set(ran.values()) == {1}, ran.most_common(3)


def test_calls_queued_behind_sync_calls_wait_their_turn_past_their_timeout(
    host: HostProcess,
) -> None:
    # four sync calls of 0.7 s on one replica: the last is answered 2.8 s after it was sent,
    # past its 2 s timeout, and an async call (0.5 s) sent behind them waits as long; none
    # of them overran, so none is a 504 and the replica stays
    (pid,) = host.worker_pids("solo")
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        works = [
            pool.submit(host.post, "/solo/work", {"call": 1000 + i, "seconds": 0.7})
            for i in range(4)
        ]
        time.sleep(0.1)
        nap = pool.submit(host.post, "/solo/nap", {"seconds": 0})
        answers = [w.result() for w in works] + [nap.result()]
    assert [(r.status_code, r.json()) for r in answers] == [(200, pid)] * 5
    assert host.worker_pids("solo") == [pid]
    assert _metric(host, 'shipyard_replica_retirements_total{service="solo"}') == 0


def test_a_worker_that_does_not_answer_pings_gets_no_call_while_another_can(
    host: HostProcess,
) -> None:
    stopped, other = _two_ready(host, "pair")
    unresponsive = 'shipyard_replicas_unresponsive{service="pair"}'
    os.kill(stopped, signal.SIGSTOP)
    try:
        wait_for(lambda: _metric(host, unresponsive) == 1, "the replica to be unresponsive")
        answers = [host.post("/pair/pid", {}, timeout=10) for _ in range(20)]
        assert [r.json() for r in answers] == [other] * 20
    finally:
        os.kill(stopped, signal.SIGCONT)
    wait_for(lambda: _metric(host, unresponsive) == 0, "the replica to answer again")
    wait_for(
        lambda: host.post("/pair/pid", {}).json() == stopped,
        "the replica to take calls again",
    )
    assert set(host.worker_pids("pair")) == {stopped, other}  # nothing was retired


def test_a_lone_unresponsive_worker_still_gets_its_calls_queued(host: HostProcess) -> None:
    (pid,) = host.worker_pids("solo")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: _metric(host, 'shipyard_replicas_unresponsive{service="solo"}') == 1,
            "the replica to be unresponsive",
        )
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            calls = [pool.submit(host.post, "/solo/pid", {}) for _ in range(3)]
            time.sleep(0.3)
            assert not any(c.done() for c in calls)  # queued on it, not refused
            os.kill(pid, signal.SIGCONT)
            answers = [c.result() for c in calls]
    finally:
        os.kill(pid, signal.SIGCONT)
    assert [(r.status_code, r.json()) for r in answers] == [(200, pid)] * 3


HUNG = """
import os
from shipyard.serve import Service, endpoint


class Hung(Service):
    @endpoint(timeout=0.5)
    def pid(self) -> int:
        return os.getpid()
"""


def test_a_worker_silent_for_hung_after_is_retired_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.config import settings
    from shipyard.serve.replica import ReplicaGone
    from shipyard.serve.supervisor import Supervisor, VersionSpec

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    code = tmp_path / "code"
    code.mkdir()
    (code / "hung_service.py").write_text(HUNG)
    conf = settings()

    async def run() -> tuple[list[tuple[str, str]], str, int, int, dict[str, int]]:
        supervisor = Supervisor(
            home, conf.store_url, config=conf, ping_interval=0.1, ping_timeout=0.3, hung_after=1
        )
        said: list[tuple[str, str]] = []
        supervisor.on_retire.append(lambda s, r: said.append((s, r)))
        try:
            group = await supervisor.deploy(VersionSpec("hung", 1, "hung_service.py:Hung", code, 1))
            first = group.replicas[0]
            assert first.pid is not None
            os.kill(first.pid, signal.SIGSTOP)  # alive, silent: no answer, no exit
            pending = first.send(group.endpoints["pid"][0], b"{}")  # queued on it (panic)
            try:
                await asyncio.wait_for(pending, 30)
                outcome = "answered"
            except ReplicaGone as exc:
                outcome = exc.reason  # it did not answer RETIRE either: killed
            deadline = asyncio.get_running_loop().time() + 60
            while not (group.replicas[0] is not first and group.replicas[0].ready):
                assert asyncio.get_running_loop().time() < deadline, "no replacement"
                await asyncio.sleep(0.05)
            fresh = group.replicas[0]
            answer = await asyncio.wait_for(fresh.send(group.endpoints["pid"][0], b"{}"), 30)
            return said, outcome, int(answer.payload), first.pid, supervisor.restarts
        finally:
            await supervisor.close()

    said, outcome, answered_by, stopped, restarts = asyncio.run(run())
    assert said == [("hung", "did not answer health pings for 1 s")]
    assert outcome.startswith("retired: did not answer health pings"), outcome
    assert answered_by != stopped and not Path(f"/proc/{stopped}").exists()
    assert restarts == {}  # a retirement is not a crash restart
