"""``@endpoint(concurrency=N)``: a ``def`` endpoint run in a pool of N threads of its own.

Definition errors; the pool against the inline default (counted inside the endpoint); a
worker that times its pooled calls from the moment they begin; a retiring or stopping
worker refusing the pooled calls that had not begun (and only those)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serve.hosts import HostProcess
from shipyard.serve import Service, ServiceClient, ServiceDefinitionError, endpoint
from shipyard.serve.protocol import OVERRAN, Frame, Kind, encode, recv_frame
from shipyard.serve.testing import FrameConnection, WorkerProcess
from support.waiting import wait_for

# -- definition errors ---------------------------------------------------------------------


def test_concurrency_on_an_async_endpoint_is_a_definition_error() -> None:
    with pytest.raises(ServiceDefinitionError) as info:

        class Bad(Service):
            @endpoint(concurrency=4)
            async def fetch(self, url: str) -> str:
                return url

    message = str(info.value)
    assert "Bad.fetch" in message and "async def" in message and "await" in message


def test_concurrency_on_a_batch_endpoint_is_a_definition_error() -> None:
    with pytest.raises(ServiceDefinitionError) as info:

        class Bad(Service):
            @endpoint(batch=True, concurrency=4)
            def score(self, rows: list[int]) -> list[int]:
                return rows

    message = str(info.value)
    assert "Bad.score" in message and "batching is how" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "from 1 to 1024 threads, got 0"),
        (1025, "from 1 to 1024 threads, got 1025"),
        (True, "must be an int (threads), got True"),
        (2.0, "must be an int (threads), got 2.0"),
        ("8", "must be an int (threads), got '8'"),
    ],
)
def test_concurrency_out_of_range_is_a_definition_error(value: Any, expected: str) -> None:
    with pytest.raises(ServiceDefinitionError, match=re.escape(expected)):

        class Bad(Service):
            @endpoint(concurrency=value)
            def nap(self) -> int:
                return 0


# -- the pool against the inline default, in process ---------------------------------------


class Counting(Service):
    """Counts the calls inside each endpoint at once (the largest number seen)."""

    def load(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.inside = {"inline": 0, "pooled": 0}
        self.most = {"inline": 0, "pooled": 0}

    def _nap(self, kind: str, seconds: float) -> int:
        with self.lock:
            self.inside[kind] += 1
            self.most[kind] = max(self.most[kind], self.inside[kind])
        time.sleep(seconds)
        with self.lock:
            self.inside[kind] -= 1
        return self.most[kind]

    @endpoint
    def inline(self, seconds: float) -> int:
        return self._nap("inline", seconds)

    @endpoint(concurrency=16)
    def pooled(self, seconds: float) -> int:
        return self._nap("pooled", seconds)


def test_a_pooled_endpoint_runs_its_calls_at_once_and_an_inline_one_in_turn() -> None:
    with ServiceClient(Counting) as client:
        started = time.monotonic()
        pooled = client.post_many("pooled", [{"seconds": 0.2}] * 16)
        elapsed = time.monotonic() - started
        inline = client.post_many("inline", [{"seconds": 0.01}] * 16)
        client.table.close()
    assert [status for status, _ in pooled] == [200] * 16
    assert max(most for _, most in pooled) == 16
    assert elapsed < 1.6  # 16 x 0.2 s in turn would be 3.2 s
    assert [answer for answer in inline] == [(200, 1)] * 16


def test_a_pooled_call_answers_errors_like_an_inline_one() -> None:
    class Failing(Service):
        @endpoint(concurrency=2)
        def half(self, n: int) -> int:
            return 10 // n

    with ServiceClient(Failing) as client:
        assert client.post("half", {"n": 5}) == (200, 2)
        status, body = client.post("half", {"n": "x"})
        assert (status, body["error"]["type"]) == (422, "validation_error")
        status, body = client.post("half", {"n": 0})
        assert (status, body["error"]["type"]) == (500, "internal_error")
        client.table.close()


# -- a real worker: its READY, its timer, its refusals ------------------------------------

POOLED = """
import sys
import time
from shipyard.serve import Service, endpoint


class Pooled(Service):
    @endpoint(timeout=0.5, concurrency=1)
    def one(self, seconds: float, tag: str) -> str:
        print(f"ran {tag}", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return tag

    @endpoint(timeout=2.0, concurrency=2)
    def two(self, seconds: float, tag: str) -> str:
        print(f"ran {tag}", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return tag
"""


@pytest.fixture(name="worker")
def worker_fixture(tmp_path: Path) -> Iterator[WorkerProcess]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "svc.py").write_text(textwrap.dedent(POOLED))
    with WorkerProcess(code, "svc.py:Pooled", "pooled", control=True) as worker:
        yield worker


def _frames(conn: FrameConnection) -> dict[int, Frame]:
    """Every frame until the worker closes the connection, by request id."""
    frames: dict[int, Frame] = {}
    with contextlib.suppress(ConnectionError):
        while True:
            frame = conn.recv()
            frames[frame.request_id] = frame
    return frames


def test_a_pooled_call_is_timed_from_when_it_began_not_while_it_waited(
    worker: WorkerProcess,
) -> None:
    conn = worker.connect()
    assert [e["concurrency"] for e in conn.ready["endpoints"]] == [1, 2]
    # one thread, timeout 0.5 s: three calls of 0.3 s; the third waits 0.6 s for the thread,
    # past its timeout, but runs 0.3 s: none overran
    ids = [conn.send_request("one", {"seconds": 0.3, "tag": f"t{i}"}) for i in range(3)]
    frames = [conn.recv() for _ in ids]
    assert sorted((f.request_id, f.code, f.extra) for f in frames) == [(i, 200, 0) for i in ids]
    # a call that runs past its timeout is answered 504 OVERRAN at its timeout, not its end
    started = time.monotonic()
    stuck = conn.send_request("one", {"seconds": 3.0, "tag": "stuck"})
    frame = conn.recv()
    assert (frame.request_id, frame.code, frame.extra) == (stuck, 504, OVERRAN)
    assert time.monotonic() - started < 2.5
    assert b'"timeout"' in frame.payload and b"replaced" in frame.payload
    # the worker keeps serving until the host retires it (the host's call, not the worker's)
    assert conn.request("two", {"seconds": 0, "tag": "after"}) == (200, "after")
    # SIGTERM does not wait for the thread of the call that overran
    assert worker.terminate(timeout=10) == 0
    assert any(e["event"] == "exit_with_running_calls" for e in worker.events())


def test_retire_refuses_the_pooled_calls_that_had_not_begun(worker: WorkerProcess) -> None:
    assert worker.control is not None
    conn = worker.connect()
    running = [conn.send_request("two", {"seconds": 1.0, "tag": f"r{i}"}) for i in range(2)]
    wait_for(lambda: "ran r0" in worker.stderr() and "ran r1" in worker.stderr(), "two to run")
    queued = [conn.send_request("two", {"seconds": 0, "tag": f"q{i}"}) for i in range(3)]
    conn.request("one", {"seconds": 0, "tag": "marker"})  # the worker has read the queued ones
    worker.control.sendall(encode(Frame(Kind.RETIRE, 0)))
    worker.control.settimeout(2.0)
    retired = recv_frame(worker.control)
    assert retired.kind is Kind.RETIRED and retired.request_id == queued[-1] + 1  # the marker
    frames = _frames(conn)
    # taken before RETIRE, but never begun: refused (sent elsewhere by the host), not run
    assert [frames[q].kind for q in queued] == [Kind.REFUSED] * 3
    assert [(frames[r].kind, frames[r].code) for r in running] == [(Kind.RESPONSE, 200)] * 2
    assert worker.process.wait(10) == 0
    assert "ran q" not in worker.stderr()


def test_sigterm_finishes_the_running_pooled_calls_and_refuses_the_queued(
    worker: WorkerProcess,
) -> None:
    conn = worker.connect()
    running = [conn.send_request("two", {"seconds": 1.0, "tag": f"r{i}"}) for i in range(2)]
    wait_for(lambda: "ran r0" in worker.stderr() and "ran r1" in worker.stderr(), "two to run")
    queued = [conn.send_request("two", {"seconds": 0, "tag": f"q{i}"}) for i in range(2)]
    conn.request("one", {"seconds": 0, "tag": "marker"})  # the worker has read the queued ones
    worker.process.send_signal(signal.SIGTERM)
    frames = _frames(conn)
    assert [(frames[r].kind, frames[r].code) for r in running] == [(Kind.RESPONSE, 200)] * 2
    assert [frames[q].kind for q in queued] == [Kind.REFUSED] * 2
    assert worker.process.wait(10) == 0
    assert "ran q" not in worker.stderr()


# -- through a real host -------------------------------------------------------------------

SLEEPY = """
import os
import threading
import time
from shipyard.serve import Service, endpoint


class Sleepy(Service):
    def load(self) -> None:
        self.lock = threading.Lock()
        self.inside = {"inline": 0, "pooled": 0}
        self.most = {"inline": 0, "pooled": 0}

    def _nap(self, kind: str) -> int:
        with self.lock:
            self.inside[kind] += 1
            self.most[kind] = max(self.most[kind], self.inside[kind])
        time.sleep(0.2)
        with self.lock:
            self.inside[kind] -= 1
        return self.most[kind]

    @endpoint
    def inline(self) -> int:
        return self._nap("inline")

    @endpoint(concurrency=16)
    def pooled(self) -> int:
        return self._nap("pooled")
"""


def test_through_the_host_a_pool_of_16_serves_16_waiting_calls_at_once(tmp_path: Path) -> None:
    host = HostProcess(tmp_path / "home").start()
    try:
        path = tmp_path / "sleepy_service.py"
        path.write_text(SLEEPY)
        host.deploy(f"{path}:Sleepy", "sleepy")
        with concurrent.futures.ThreadPoolExecutor(16) as clients:
            started = time.monotonic()
            pooled = list(clients.map(lambda _: host.post("/sleepy/pooled", {}), range(16)))
            elapsed = time.monotonic() - started
            inline = list(clients.map(lambda _: host.post("/sleepy/inline", {}), range(16)))
    finally:
        host.stop()
    assert [r.status_code for r in pooled + inline] == [200] * 32
    assert elapsed < 1.6  # 16 x 0.2 s in turn would be 3.2 s
    assert max(r.json() for r in pooled) >= 8  # the calls overlapped in the worker
    assert max(r.json() for r in inline) == 1  # inline: one at a time, always
