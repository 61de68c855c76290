"""The open and closed models against a tiny real HTTP server on 127.0.0.1: counts that
agree with the server's, the rate held, coordinated omission corrected, errors by status
and by exception."""

from __future__ import annotations

import socket
import time

import pytest

from loadtest.http_servers import Behaviour, tiny_server
from shipyard.loadtest import Body, Plan, parse_target, request_cycle, run
from shipyard.loadtest.connection import Connection


def _plan(url: str, **settings: object) -> Plan:
    address, _ = parse_target(url, "")
    bodies = settings.pop("bodies", [Body(b'{"x":1}')])
    requests = tuple(request_cycle(address, bodies))  # type: ignore[arg-type]
    values: dict[str, object] = {"duration": 1.0, "max_requests": 1_000_000, "timeout": 5.0}
    values.update(settings)
    return Plan(address, requests, **values)  # type: ignore[arg-type]


def test_the_closed_model_counts_exactly_what_the_server_answered() -> None:
    with tiny_server() as server:
        outcome = run(_plan(server.url + "/echo/x", concurrency=8, duration=1.5))
        answered = server.answered
    assert outcome.total.responses == answered > 100
    assert outcome.total.requests == answered and outcome.total.errors == 0
    assert sum(i.sent for i in outcome.intervals) == answered
    assert outcome.results[0].connections_opened == 8
    assert outcome.total.latency.count == answered


def test_the_request_cap_stops_a_run_early_and_exactly() -> None:
    with tiny_server() as server:
        outcome = run(_plan(server.url + "/x", concurrency=4, duration=30, max_requests=777))
        answered = server.answered
    assert answered == outcome.total.responses == 777
    assert outcome.stopped_by == "max-requests"
    assert outcome.measured_seconds < 10


def test_chunked_answers_and_connections_closed_after_each_answer_are_handled() -> None:
    # a capped count: each closed connection leaves a port in TIME_WAIT for a minute
    with tiny_server(Behaviour(chunked=True, close=True)) as server:
        outcome = run(_plan(server.url + "/x", concurrency=4, duration=10, max_requests=200))
        answered = server.answered
    assert outcome.total.responses == answered == 200
    assert outcome.total.errors == 0
    # a new connection for each answer (and a few more, opened as the last ones were sent)
    assert answered <= outcome.results[0].connections_opened <= answered + 4


def test_the_open_model_holds_its_rate_and_sends_exactly_its_schedule() -> None:
    with tiny_server() as server:
        outcome = run(_plan(server.url + "/x", rate=400, duration=2.0))
        answered = server.answered
    assert answered == outcome.total.responses == 800  # 400/s for 2 s, on the schedule
    per_second = [i.sent for i in outcome.intervals if i.second in (0, 1)]
    assert all(360 <= sent <= 440 for sent in per_second), per_second
    assert 380 <= outcome.rps <= 420


def test_a_ramp_is_not_measured() -> None:
    with tiny_server() as server:
        outcome = run(_plan(server.url + "/x", rate=200, duration=1.0, ramp=1.0))
        answered = server.answered
    # the ramp sends 200 * 1 / 2 = 100 requests, unmeasured; then 200 measured
    assert answered == 300
    assert outcome.total.responses == 200
    assert sum(i.responses for i in outcome.intervals if i.second < 0) == 100


def test_coordinated_omission_a_stalling_server_shows_in_the_corrected_p99_only() -> None:
    # stalls 0.5 s every 2.5 s; 200 requests a second for 10 s over one connection: the
    # requests scheduled during a stall wait in the client, and only the corrected latency
    # (from when each should have started) counts that wait
    with tiny_server(Behaviour(stall=0.5, period=2.5)) as server:
        outcome = run(_plan(server.url + "/x", rate=200, duration=10.0, max_connections=1))
    total = outcome.total
    assert total.responses == 2000 and total.errors == 0
    corrected = total.latency.percentile(99) / 1000
    uncorrected = total.uncorrected.percentile(99) / 1000
    assert corrected >= 250, corrected
    assert uncorrected < 50, uncorrected
    assert uncorrected * 5 < corrected


def test_errors_are_counted_by_status_and_their_latencies_kept() -> None:
    bodies = [Body(b"{}", "/fine"), Body(b"{}", "/broken", weight=3)]
    with tiny_server(Behaviour(statuses={"/broken": 503})) as server:
        outcome = run(_plan(server.url + "/x", concurrency=2, max_requests=400, bodies=bodies))
        by_path = dict(server.by_path)
    assert by_path == {"/fine": 100, "/broken": 300}
    assert dict(outcome.total.statuses) == {503: 300}
    assert outcome.total.errors == 300 and outcome.total.latency.count == 400


def test_a_refused_connection_is_an_error_named_by_its_exception() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once it is closed
    outcome = run(_plan(f"http://127.0.0.1:{port}/x", concurrency=2, duration=0.5))
    assert outcome.total.responses == 0
    assert set(outcome.total.exceptions) == {"ConnectionRefusedError"}
    assert outcome.total.errors == outcome.total.requests > 0


def test_a_request_with_no_answer_times_out_and_the_run_still_ends() -> None:
    with tiny_server(Behaviour(hang=frozenset({"/hang"}))) as server:
        outcome = run(_plan(server.url + "/hang", rate=20, duration=1.0, timeout=0.3))
        assert server.answered == 0
    assert outcome.total.responses == 0
    assert dict(outcome.total.exceptions) == {"Timeout": 20}


def test_the_open_model_never_sends_a_request_before_its_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # uvloop's timers count whole milliseconds and often fire early; a request sent early
    # would have its corrected latency start after it was sent
    early: list[float] = []
    send = Connection.send

    def checked(self: Connection, request: bytes, intended: float) -> None:
        if time.perf_counter() < intended:
            early.append(intended - time.perf_counter())
        send(self, request, intended)

    monkeypatch.setattr(Connection, "send", checked)
    with tiny_server() as server:
        outcome = run(_plan(server.url + "/x", rate=270, duration=1.0))
    assert outcome.total.responses == 270
    assert early == []
