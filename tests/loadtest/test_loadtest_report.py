"""What a run tells: the client-was-the-limit warnings and the summary's keys per model."""

from __future__ import annotations

from shipyard.loadtest import Address, Interval, Outcome, Plan, ProcessResult, summary, table
from shipyard.loadtest.report import client_warnings


def _outcome(*, rate: float | None, cpu: float, lag_us: int = 0) -> Outcome:
    plan = Plan(Address("http", "127.0.0.1", 9, "/"), (b"",), duration=1.0, max_requests=10,
                rate=rate, concurrency=None if rate else 2)  # fmt: skip
    total = Interval(second=0, responses=100, sent=100)
    for _ in range(100):
        total.latency.record(1_000)
        total.uncorrected.record(900)
        total.lag.record(lag_us)
    result = ProcessResult(total, cpu_seconds=cpu, wall_seconds=1.0, measured_seconds=1.0,
                           stopped_by="duration")  # fmt: skip
    return Outcome(plan, 1, [total], total, [result])


def test_a_busy_client_is_named_as_the_limit() -> None:
    assert client_warnings(_outcome(rate=None, cpu=0.5)) == []
    (warning,) = client_warnings(_outcome(rate=None, cpu=0.95))
    assert "95% of a core" in warning and "the client was the limit" in warning


def test_a_late_open_client_is_told_why() -> None:
    assert client_warnings(_outcome(rate=100, cpu=0.1, lag_us=900)) == []
    (idle,) = client_warnings(_outcome(rate=100, cpu=0.1, lag_us=2_000))
    assert "send lag p99 2.00 ms" in idle and "the machine is busy" in idle
    (busy,) = client_warnings(_outcome(rate=100, cpu=0.7, lag_us=2_000))
    assert "add --processes" in busy


def test_the_uncorrected_latency_is_reported_for_the_open_model_only() -> None:
    keys = {"p50", "p90", "p99", "p999", "max", "mean"}
    opened = summary(_outcome(rate=100, cpu=0.1), target="x")
    assert set(opened["latency_ms"]) == keys == set(opened["latency_uncorrected_ms"])
    assert opened["latency_ms"]["p99"] == 1.0 and opened["latency_uncorrected_ms"]["p99"] == 0.9
    closed = summary(_outcome(rate=None, cpu=0.1), target="x")
    assert "latency_uncorrected_ms" not in closed and "send_lag_ms" not in closed
    assert (closed["requests"], closed["errors"], closed["rps"]) == (100, 0, 100.0)
    assert "uncorrected" in table(opened) and "uncorrected" not in table(closed)
