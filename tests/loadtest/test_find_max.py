"""``--find-max``: the search over rates (against a modelled server, then the command
against a real tiny one), bounded by its steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from click.testing import CliRunner

from loadtest.http_servers import tiny_server
from shipyard.cli.main import main
from shipyard.loadtest import (
    Address,
    Interval,
    Outcome,
    Plan,
    ProcessResult,
    parse_slo,
)
from shipyard.loadtest.search import find_max

CAPACITY = 700.0  # the modelled server's p99 jumps past this rate


def _modelled(plan: Plan, processes: int) -> Outcome:
    rate = plan.rate or 0.0
    total = Interval(second=0)
    for _ in range(100):
        total.latency.record(10_000 if rate <= CAPACITY else 200_000)
    total.responses = 100
    result = ProcessResult(total, cpu_seconds=0.1, wall_seconds=1.0, measured_seconds=1.0,
                           stopped_by="duration")  # fmt: skip
    return Outcome(plan, processes, [total], total, [result])


def _late(cpu_seconds: float) -> Callable[[Plan, int], Outcome]:
    """The modelled server, with every request sent 5 ms late by a client that used
    ``cpu_seconds`` of its one second."""

    def step(plan: Plan, processes: int) -> Outcome:
        outcome = _modelled(plan, processes)
        for _ in range(100):
            outcome.total.lag.record(5_000)
        outcome.results[0] = replace(outcome.results[0], cpu_seconds=cpu_seconds)
        return outcome

    return step


def _plan(rate: float) -> Plan:
    return Plan(Address("http", "127.0.0.1", 9, "/"), (b"",), duration=1.0,
                max_requests=1000, rate=rate)  # fmt: skip


def test_the_search_doubles_then_halves_the_gap_within_its_steps() -> None:
    search = find_max(_plan(100), parse_slo("p99<50ms"), steps=6, run_step=_modelled)
    rates = [s.rate for s in search.steps]
    assert rates == [100, 200, 400, 800, 600, 700]
    assert search.best is not None and search.best.rate == 700
    assert search.ended_by == "steps"


def test_the_search_stops_when_close_enough_or_when_nothing_meets() -> None:
    search = find_max(_plan(100), parse_slo("p99<50ms"), steps=20, run_step=_modelled)
    assert search.ended_by == "converged" and len(search.steps) < 20
    assert search.best is not None and CAPACITY * 0.95 <= search.best.rate <= CAPACITY
    nothing = find_max(_plan(100), parse_slo("p99<1ms"), steps=3, run_step=_modelled)
    assert [s.rate for s in nothing.steps] == [100, 50, 25] and nothing.best is None


def test_a_late_client_stops_the_search_only_when_it_was_busy() -> None:
    # mostly idle and late: the machine was busy; the lateness is in the corrected latency
    idle = find_max(_plan(100), parse_slo("p99<50ms"), steps=6, run_step=_late(0.1))
    assert [s.rate for s in idle.steps] == [100, 200, 400, 800, 600, 700]
    assert not any(s.client_limited for s in idle.steps) and idle.ended_by == "steps"
    busy = find_max(_plan(100), parse_slo("p99<50ms"), steps=6, run_step=_late(0.6))
    assert [s.rate for s in busy.steps] == [100] and busy.ended_by == "client"


def test_the_command_searches_a_real_server_within_its_steps() -> None:
    with tiny_server() as server:
        result = CliRunner().invoke(main, [
            "loadtest", server.url + "/x", "--find-max", "--rate", "50", "--steps", "2",
            "--duration", "0.5s", "--slo", "p99<10s,errors<1%",
        ])  # fmt: skip
        answered = server.answered
    assert result.exit_code == 0, result.output
    assert "at most 2 steps of 0.5s" in result.output
    # 50/s for half a second, then 100/s, unless the first step found the client to be the
    # limit (the server here shares the test's process, and can slow the client down)
    if "highest rate meeting the SLO: 100.0 req/s" in result.output:
        assert answered == 25 + 50
    else:
        assert "highest rate meeting the SLO: 50.0 req/s (the client became" in result.output
        assert answered == 25


def test_find_max_needs_an_slo_and_a_rate() -> None:
    result = CliRunner().invoke(main, ["loadtest", "http://127.0.0.1:9/", "--find-max",
                                       "--concurrency", "2"])  # fmt: skip
    assert result.exit_code == 2 and "--find-max needs --slo" in result.output
