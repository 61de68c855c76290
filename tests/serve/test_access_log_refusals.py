"""Refused calls are in the host's access log, at most 50 lines a second per reason, then
one line with the count left out (on a hand-moved clock: no sleeps)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shipyard.serve.accesslog import RefusalLog
from shipyard.serve.host import Host
from shipyard.store import context as _stores
from support.clock import Clock


def _refuse(log: RefusalLog, reason: str, times: int) -> None:
    for _ in range(times):
        log.refused(
            reason, service="svc", endpoint="e", status=503, ms=0.1, bytes_in=0, bytes_out=10
        )


def _parse(lines: list[bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines]


def test_each_reason_writes_at_most_50_lines_a_second_then_the_count_left_out(
    clock: Clock,
) -> None:
    lines: list[bytes] = []
    log = RefusalLog(clock=clock, write=lines.append)
    _refuse(log, "overloaded", 120)
    _refuse(log, "unauthorized", 3)  # another reason has its own 50
    records = _parse(lines)
    assert [r["reason"] for r in records] == ["overloaded"] * 50 + ["unauthorized"] * 3
    assert records[0]["status"] == 503 and records[0]["replica"] is None
    clock.advance(0.5)
    log.flush()  # the second is not over: nothing yet
    assert len(lines) == 53
    clock.advance(0.5)
    log.flush()
    (summary,) = _parse(lines[53:])
    assert {k: v for k, v in summary.items() if k != "ts"} == {
        "reason": "overloaded",
        "suppressed": 70,
        "seconds": 1.0,
    }
    log.flush()
    assert len(lines) == 54  # said once
    _refuse(log, "overloaded", 60)  # a new second: 50 lines again
    assert len(lines) == 54 + 50


def test_the_next_refusal_after_the_second_writes_the_count_without_a_flush(
    clock: Clock,
) -> None:
    lines: list[bytes] = []
    log = RefusalLog(clock=clock, write=lines.append)
    _refuse(log, "overloaded", 51)
    clock.advance(1)
    _refuse(log, "overloaded", 1)
    records = _parse(lines)
    assert len(records) == 52
    assert records[50]["suppressed"] == 1 and records[51]["status"] == 503


def test_a_callers_odd_service_name_is_escaped(clock: Clock) -> None:
    lines: list[bytes] = []
    log = RefusalLog(clock=clock, write=lines.append)
    log.refused(
        "not_found",
        service='x"}\n{"forged": 1',
        endpoint="e" * 1000,
        status=404,
        ms=0.0,
        bytes_in=0,
        bytes_out=1,
    )
    assert len(lines) == 1 and lines[0].count(b"\n") == 1
    record = json.loads(lines[0])
    assert record["service"] == 'x"}\n{"forged": 1' and len(record["endpoint"]) == 200


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    _stores.reset()
    made = Host.from_settings(access_log=True)
    yield made
    for close in reversed(made.on_close):
        close()
    _stores.reset()


def test_the_host_logs_refused_calls_with_their_reason(host: Host, clock: Clock) -> None:
    lines: list[bytes] = []
    host.invoke.refusal_log = RefusalLog(clock=clock, write=lines.append)
    client = TestClient(host, client=("127.0.0.1", 1), base_url="http://127.0.0.1:8000")
    answers = [client.post("/nosuch/call", json={}).status_code for _ in range(60)]
    assert answers == [404] * 60
    records = _parse(lines)
    assert len(records) == 50
    first = records[0]
    assert (first["service"], first["endpoint"], first["status"]) == ("nosuch", "call", 404)
    assert first["reason"] == "not_found" and first["bytes_out"] > 0
    clock.advance(1)
    client.post("/nosuch/call", json={})
    assert [r.get("suppressed") for r in _parse(lines[50:])] == [10, None]


def test_without_the_access_log_refusals_are_not_logged(host: Host, clock: Clock) -> None:
    lines: list[bytes] = []
    host.invoke.refusal_log = RefusalLog(clock=clock, write=lines.append)
    host.invoke.access_log = False
    client = TestClient(host, client=("127.0.0.1", 1), base_url="http://127.0.0.1:8000")
    assert client.post("/nosuch/call", json={}).status_code == 404
    assert lines == []
