"""The worker process: READY, multiplexed frames, load failures, SIGTERM drain."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import textwrap
from pathlib import Path

import pytest

from shipyard.serve.protocol import Frame, Kind, encode, recv_frame
from shipyard.serve.testing import WorkerExited, WorkerProcess
from support.waiting import wait_for

SERVICE = '''
import asyncio
import gc
import os

from pydantic import BaseModel

from shipyard.serve import Service, endpoint


class Pair(BaseModel):
    user: str
    item: str


class Ranker(Service):
    """Ranks pairs."""

    def load(self):
        self.calls = []

    @endpoint
    def info(self) -> dict[str, object]:
        return {
            "module": type(self).__module__,
            "pins": os.environ.get("SHIPYARD_MODEL_PINS"),
            "frozen": gc.get_freeze_count(),
        }

    @endpoint(timeout=2.5)
    async def slow(self, seconds: float, tag: str) -> str:
        await asyncio.sleep(seconds)
        return tag

    @endpoint(batch=True, max_batch_size=16, max_wait_ms=50)
    async def score(self, pairs: list[Pair]) -> list[float]:
        await asyncio.sleep(0.05)
        return [float(len(p.user)) for p in pairs]

    @endpoint
    def boom(self) -> str:
        raise RuntimeError("secret detail")
'''


def _write(tmp_path: Path, source: str, name: str = "svc.py") -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / name).write_text(textwrap.dedent(source))
    return code


@pytest.fixture(name="worker")
def worker_fixture(tmp_path: Path):  # type: ignore[no-untyped-def]
    code = _write(tmp_path, SERVICE)
    with WorkerProcess(code, "svc.py:Ranker", "ranker", pins={"ranker@prod": "ranker:7"}) as w:
        yield w


def test_ready_payload(worker: WorkerProcess) -> None:
    conn = worker.connect()
    ready = conn.ready
    assert set(ready) == {"service", "pid", "endpoints", "openapi", "models", "warnings"}
    assert ready["warnings"] == []  # e.g. a feature set other than its model's
    assert ready["service"] == "ranker"
    assert ready["pid"] == worker.process.pid
    assert ready["endpoints"] == [
        {"name": "info", "batch": False, "timeout": 30.0, "async": False, "concurrency": None},
        {"name": "slow", "batch": False, "timeout": 2.5, "async": True, "concurrency": None},
        {"name": "score", "batch": True, "timeout": 30.0, "async": True, "concurrency": None},
        {"name": "boom", "batch": False, "timeout": 30.0, "async": False, "concurrency": None},
    ]
    assert ready["models"] == {"ranker@prod": "ranker:7"}
    assert ready["openapi"]["openapi"] == "3.1.0"
    assert list(ready["openapi"]["paths"]) == [
        "/ranker/info",
        "/ranker/slow",
        "/ranker/score",
        "/ranker/boom",
    ]
    assert stat.S_IMODE(os.stat(worker.socket_path).st_mode) == 0o600
    # every connection starts with READY
    assert worker.connect().ready == ready


def test_user_code_imported_under_its_own_name_after_pins_and_frozen(
    worker: WorkerProcess,
) -> None:
    status, info = worker.connect().request("info")
    assert status == 200
    assert info["module"] == "svc"
    assert json.loads(info["pins"]) == {"ranker@prod": "ranker:7"}
    assert info["frozen"] > 0


def test_many_requests_in_flight_on_one_connection(worker: WorkerProcess) -> None:
    conn = worker.connect()
    ids = {
        conn.send_request("slow", {"seconds": seconds, "tag": tag}): tag
        for seconds, tag in [(0.3, "late"), (0.0, "early"), (0.15, "middle")]
    }
    score_ids = [
        conn.send_request("score", {"pairs": [{"user": "ab", "item": "x"}]}) for _ in range(5)
    ]
    conn.send(Frame(Kind.PING, 999))
    frames = [conn.recv() for _ in range(len(ids) + len(score_ids) + 1)]
    by_id = {f.request_id: f for f in frames}
    assert by_id[999].kind is Kind.PONG
    for request_id, tag in ids.items():
        frame = by_id[request_id]
        assert (frame.kind, frame.code, json.loads(frame.payload)) == (Kind.RESPONSE, 200, tag)
        assert frame.extra == 0
    order = [f.request_id for f in frames if f.request_id in ids]
    assert [ids[i] for i in order] == ["early", "middle", "late"]  # not in sending order
    # concurrent score requests ran in batches; RESPONSE.extra says how big
    sizes = [by_id[i].extra for i in score_ids]
    assert all(json.loads(by_id[i].payload) == [2.0] for i in score_ids)
    assert max(sizes) > 1 and all(1 <= size <= 5 for size in sizes)


def test_a_body_streamed_in_chunks_runs_at_its_last_one_between_other_requests(
    worker: WorkerProcess,
) -> None:
    conn = worker.connect()
    slow = conn.indexes["slow"]
    body = json.dumps({"seconds": 0, "tag": "streamed " + "x" * 100_000}).encode()
    parts = [body[:10], body[10:60_000], body[60_000:]]
    conn.send(Frame(Kind.REQUEST, 1001, slow, 1, parts[0]))  # extra=1: the body follows
    whole = conn.send_request("slow", {"seconds": 0, "tag": "whole"})
    conn.send(Frame(Kind.CHUNK, 1001, 0, 1, parts[1]))
    conn.send(Frame(Kind.PING, 999))
    conn.send(Frame(Kind.CHUNK, 1001, 0, 0, parts[2]))  # the last
    frames = {f.request_id: f for f in (conn.recv() for _ in range(3))}
    assert set(frames) == {1001, whole, 999}
    assert json.loads(frames[1001].payload) == "streamed " + "x" * 100_000
    assert json.loads(frames[whole].payload) == "whole"


def test_an_aborted_body_is_dropped_without_an_answer(worker: WorkerProcess) -> None:
    conn = worker.connect()
    slow = conn.indexes["slow"]
    body = json.dumps({"seconds": 0, "tag": "never"}).encode()
    conn.send(Frame(Kind.REQUEST, 1002, slow, 1, body[:5]))
    conn.send(Frame(Kind.ABORT, 1002))
    conn.send(Frame(Kind.CHUNK, 1002, 0, 0, body[5:]))  # late: dropped as well
    conn.send(Frame(Kind.ABORT, 4242))  # an id the worker never saw: nothing to do
    conn.send(Frame(Kind.PING, 999))
    assert conn.recv().kind is Kind.PONG
    # the next answer is the next request's: 1002 never ran
    status, tag = conn.request("slow", {"seconds": 0, "tag": "after"})
    assert (status, tag) == (200, "after")


def test_errors_do_not_leak_tracebacks(worker: WorkerProcess) -> None:
    conn = worker.connect()
    status, body = conn.request("boom")
    assert status == 500
    assert body["error"]["type"] == "internal_error"
    assert "secret" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    conn.send(Frame(Kind.REQUEST, 77, 42, 0, b"{}"))
    frame = conn.recv()
    assert (frame.request_id, frame.code) == (77, 404)
    assert json.loads(frame.payload)["error"]["type"] == "unknown_endpoint"
    logged = wait_for(
        lambda: [e for e in worker.events() if e["event"] == "endpoint_error"],
        "the worker to log the endpoint_error",
    )
    assert logged[0]["error_id"] == body["error"]["error_id"]
    assert "secret detail" in logged[0]["traceback"]


def test_load_failure_exits_3_with_a_json_line(tmp_path: Path) -> None:
    code = _write(
        tmp_path,
        """
        from shipyard.serve import Service, endpoint

        class Broken(Service):
            def load(self):
                raise FileNotFoundError("model.bin is missing")

            @endpoint
            def ping(self) -> str:
                return "pong"
    """,
    )
    with WorkerProcess(code, "svc.py:Broken", "broken") as worker:
        with pytest.raises(WorkerExited) as info:
            worker.connect()
        assert info.value.returncode == 3
        (event,) = [e for e in worker.events() if e["event"] == "load_failed"]
        assert event["error"].startswith("FileNotFoundError: model.bin is missing")
        assert "svc.py:" in event["error"] and "in load" in event["error"]
        assert "Traceback" in event["traceback"]
        assert not worker.socket_path.exists()


@pytest.mark.parametrize(
    ("source", "entry", "expected"),
    [
        ("x = (", "svc.py:X", "SyntaxError"),
        (
            "from shipyard.serve import Service\nclass X(Service): pass\n",
            "svc.py:X",
            "no endpoints",
        ),
        ("class X: pass\n", "svc.py:X", "not a Service subclass"),
        ("", "svc.py:Missing", "Missing is not defined"),
        ("", "nope.py:X", "does not exist"),
    ],
)
def test_definition_and_import_errors_exit_3(
    tmp_path: Path, source: str, entry: str, expected: str
) -> None:
    code = _write(tmp_path, source)
    with WorkerProcess(code, entry, "bad") as worker:
        with pytest.raises(WorkerExited) as info:
            worker.connect()
        assert info.value.returncode == 3
        (event,) = [e for e in worker.events() if e["event"] == "load_failed"]
        assert expected in event["error"]


def test_sigterm_finishes_in_flight_requests(worker: WorkerProcess) -> None:
    conn = worker.connect()
    # long enough to still run when the late request comes in, even on a loaded machine
    slow_id = conn.send_request("slow", {"seconds": 1.0, "tag": "finished"})
    conn.send(Frame(Kind.PING, 999))  # frames are read in order: after the PONG, it has it
    pong = conn.recv()
    assert (pong.kind, pong.request_id) == (Kind.PONG, 999)
    worker.process.send_signal(signal.SIGTERM)
    wait_for(lambda: not worker.socket_path.exists(), "the worker to stop accepting")
    late_id = conn.send_request("slow", {"seconds": 0, "tag": "too late"})
    frames = {f.request_id: f for f in (conn.recv(), conn.recv())}
    assert (frames[slow_id].code, json.loads(frames[slow_id].payload)) == (200, "finished")
    # not run: REFUSED tells the host it may send it to another replica
    assert (frames[late_id].kind, frames[late_id].payload) == (Kind.REFUSED, b"")
    assert worker.process.wait(10) == 0
    assert worker.events()[-1] == {**worker.events()[-1], "event": "stopped", "unfinished": 0}


HOLDING = """
import sys
import time
from shipyard.serve import Service, endpoint


class Holding(Service):
    @endpoint
    def hold(self, seconds: float, tag: str) -> str:
        print(f"ran {tag}", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return tag
"""


def test_retire_is_answered_while_a_sync_call_holds_the_loop(tmp_path: Path) -> None:
    code = _write(tmp_path, HOLDING)
    with WorkerProcess(code, "svc.py:Holding", "holding", control=True) as worker:
        assert worker.control is not None
        conn = worker.connect()
        held = conn.send_request("hold", {"seconds": 1.5, "tag": "held"})
        wait_for(lambda: "ran held" in worker.stderr(), "the sync call to run")
        queued = [conn.send_request("hold", {"seconds": 0, "tag": f"q{i}"}) for i in range(3)]
        worker.control.sendall(encode(Frame(Kind.RETIRE, 0)))
        worker.control.settimeout(1.0)  # well before the held call ends: a thread answers
        retired = recv_frame(worker.control)
        assert (retired.kind, retired.request_id) == (Kind.RETIRED, held)
        frames = []
        with contextlib.suppress(ConnectionError):
            while True:
                frames.append(conn.recv())
        answered = {f.request_id: f for f in frames}
        assert (answered[held].kind, answered[held].code) == (Kind.RESPONSE, 200)
        # the queued ones were not run: refused, or left for RETIRED to tell
        assert all(answered[q].kind is Kind.REFUSED for q in queued if q in answered)
        assert worker.process.wait(10) == 0
        assert "ran q" not in worker.stderr()
