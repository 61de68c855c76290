"""A request that crashes its worker, repeated, must not keep a service down: after it was in
flight at 2 worker crashes within 60 s the host refuses it (503 ``poison_request``) without
sending it to a worker again, and every other call is served."""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import re
import threading
from pathlib import Path

import httpx

from serve.hosts import HostProcess
from support.waiting import wait_for

CRASHY = """
import os
from shipyard.serve import Service, endpoint


class Crashy(Service):
    @endpoint
    def maybe_crash(self, die: bool) -> str:
        if die:
            os._exit(1)  # the worker process is gone, with every request in flight on it
        return "alive"

    @endpoint
    def echo(self, x: int) -> int:
        return x
"""


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_request_that_crashed_its_worker_twice_is_refused_and_the_rest_served(
    tmp_path: Path,
) -> None:
    host = HostProcess(tmp_path / "home").start()
    try:
        path = tmp_path / "crashy_service.py"
        path.write_text(CRASHY)
        host.deploy(f"{path}:Crashy", "crashy")

        def healthy() -> bool:
            return host.post("/crashy/echo", {"x": 1}).status_code == 200

        answers = []
        for _ in range(5):  # the same poison body, each time once the worker is back
            wait_for(healthy, "the crashy service to be ready again", timeout=30)
            answers.append(host.post("/crashy/maybe_crash", {"die": True}))
        types = [r.json()["error"]["type"] for r in answers]
        assert [r.status_code for r in answers] == [503] * 5, types
        assert types == ["worker_crashed"] * 2 + ["poison_request"] * 3, types
        refused = answers[-1]
        assert 60 < int(refused.headers["retry-after"]) <= 600
        error = refused.json()["error"]
        assert "crashy/maybe_crash" in error["message"] and "600 s" in error["message"]
        assert re.fullmatch(r"[0-9a-f]{64}", error["sha256"])

        # the same endpoint with another body, and the other endpoint, are served
        wait_for(healthy, "the crashy service to be ready again", timeout=30)
        assert host.post("/crashy/maybe_crash", {"die": False}).json() == "alive"
        assert [host.post("/crashy/echo", {"x": i}).json() for i in range(20)] == list(range(20))

        metrics = httpx.get(host.url + "/metrics").text
        # the worker crashed twice, not five times
        assert _metric(metrics, 'shipyard_worker_restarts_total{service="crashy"}') == 2
        poison = 'shipyard_poison_requests_total{endpoint="maybe_crash",service="crashy"}'
        assert _metric(metrics, poison) == 3
        rejected = 'shipyard_rejected_total{reason="poison_request",service="crashy"}'
        assert _metric(metrics, rejected) == 3
        assert _metric(metrics, "shipyard_poison_hashes_held") == 1
        marked = 'shipyard_poison_hashes_marked_total{endpoint="maybe_crash",service="crashy"}'
        assert _metric(metrics, marked) == 1

        # the refusals are in the access log, with their reason
        lines = [json.loads(x) for x in host.log.read_text().splitlines() if x.startswith("{")]
        logged = [x for x in lines if x.get("reason") == "poison_request"]
        assert len(logged) == 3 and all(x["status"] == 503 for x in logged), logged
    finally:
        host.stop()


BUSY = """
import os
import time
from shipyard.serve import Service, endpoint


class Busy(Service):
    @endpoint
    def word(self, word: str) -> str:
        if word == "dead":
            os._exit(1)
        time.sleep(0.02)  # a few requests are always queued on each worker
        return word
"""


def test_callers_in_flight_at_the_crashes_are_not_taken_for_the_poison(tmp_path: Path) -> None:
    # the healthy callers send one body over and over, as a load generator does, and the same
    # length as the poison one: they are in flight at crashes, but workers answer them
    host = HostProcess(tmp_path / "home").start()
    try:
        path = tmp_path / "busy_service.py"
        path.write_text(BUSY)
        host.deploy(f"{path}:Busy", "busy", "--replicas", "2")
        done = threading.Event()
        healthy: list[tuple[int, str | None]] = []

        def caller() -> None:
            with httpx.Client(base_url=host.url, timeout=30) as client:
                while not done.is_set() and len(healthy) < 5000:
                    r = client.post("/busy/word", json={"word": "live"})
                    error = r.json()["error"]["type"] if r.status_code != 200 else None
                    healthy.append((r.status_code, error))

        def ready() -> bool:
            return host.post("/busy/word", {"word": "live"}).status_code == 200

        poison: list[str] = []
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            callers = [pool.submit(caller) for _ in range(4)]
            try:
                for _ in range(20):  # bounded: 2 crashes and 3 refusals are enough
                    wait_for(ready, "a ready replica of busy", timeout=30)
                    r = host.post("/busy/word", {"word": "dead"})
                    poison.append(r.json()["error"]["type"])
                    if poison.count("poison_request") == 3:
                        break
            finally:
                done.set()
            for future in callers:
                future.result()
        assert poison.count("worker_crashed") == 2, poison
        assert poison[-3:] == ["poison_request"] * 3, poison
        errors = collections.Counter(error for _, error in healthy)
        assert errors[None] > 0 and "poison_request" not in errors, errors
        # some were in flight at a crash (suspects, then cleared when answered)
        assert errors["worker_crashed"] >= 1, errors
        assert set(errors) <= {None, "worker_crashed", "unavailable"}, errors
        wait_for(ready, "a ready replica of busy", timeout=30)
        answers = [host.post("/busy/word", {"word": "live"}).status_code for _ in range(20)]
        assert answers == [200] * 20
        metrics = httpx.get(host.url + "/metrics").text
        assert _metric(metrics, 'shipyard_worker_restarts_total{service="busy"}') == 2
    finally:
        host.stop()


STREAMED = """
import os
from shipyard.serve import Service, endpoint


class Streamed(Service):
    @endpoint
    def take(self, data: str) -> int:
        if data.startswith("die"):
            os._exit(1)
        return len(data)
"""


def test_a_poison_body_streamed_to_its_worker_is_known_by_its_digest(tmp_path: Path) -> None:
    # a 1 MB body is streamed to the worker, not kept by the host: it is hashed as it streams
    # (crash attribution), and refused at the end of its stream once poison (the worker
    # never sees it whole again)
    host = HostProcess(tmp_path / "home").start()
    try:
        path = tmp_path / "streamed_service.py"
        path.write_text(STREAMED)
        host.deploy(f"{path}:Streamed", "streamed")
        body = json.dumps({"data": "die" + "x" * (1 << 20)}).encode()
        healthy = json.dumps({"data": "x" * (1 << 20)}).encode()

        def ready() -> bool:
            r = httpx.post(host.url + "/streamed/take", content=healthy, timeout=30)
            return r.status_code == 200 and r.json() == 1 << 20

        types = []
        for _ in range(3):
            wait_for(ready, "the streamed service to be ready again", timeout=30)
            r = httpx.post(host.url + "/streamed/take", content=body, timeout=30)
            assert r.status_code == 503
            types.append(r.json()["error"]["type"])
        assert types == ["worker_crashed", "worker_crashed", "poison_request"], types
        expected = hashlib.sha256(b"streamed/take\n" + body).hexdigest()
        assert r.json()["error"]["sha256"] == expected
        assert ready()
        metrics = httpx.get(host.url + "/metrics").text
        assert _metric(metrics, 'shipyard_worker_restarts_total{service="streamed"}') == 2
        assert _metric(metrics, "shipyard_body_bytes_held") == 0  # crashed, refused: released
    finally:
        host.stop()
