"""Usage accounting: batched upserts (counted transactions), the writer thread, close(), a
database that is down, Prometheus metrics without secrets, and `shipyard gateway usage /
budget` through CliRunner. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest

from shipyard.cli.gateway_usage import COMMANDS
from shipyard.gateway.admission import GatewayAdmission, make_admission
from shipyard.gateway.model import Provider, Route, RouteType, Upstream
from shipyard.gateway.usage import UsageRecorder, query_usage, usage_metrics
from shipyard.keys import KeyRecord, KeyStore
from shipyard.store.meta import MetaStore
from shipyard.store.schema import gateway_spend, gateway_usage

T0 = datetime(2026, 11, 22, 10, 15, 30, tzinfo=UTC)


class Wall:
    """A UTC clock that only moves when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def route(name: str = "chat", **kw: Any) -> Route:
    upstream = Upstream(provider=Provider.OPENAI, base_url="http://127.0.0.1:9/v1", model="m")
    return Route(name=name, type=RouteType.CHAT, upstream=upstream, **kw)


def key(key_id: int = 7, prefix: str = "0123456789ab") -> KeyRecord:
    return KeyRecord(key_id, "web", prefix, ("route:*",), T0, "ann")


def commits(engine: sa.Engine) -> list[int]:
    count = [0]

    @sa.event.listens_for(engine, "commit")
    def _count(_conn: Any) -> None:
        count[0] += 1

    return count


def add(usage: UsageRecorder, route_name: str = "chat", key_id: int | None = 7, **kw: Any) -> None:
    values: dict[str, Any] = dict(status=200, latency_ms=50.0, tokens_in=10, tokens_out=20,
                                  streamed=False, cost=0.0)  # fmt: skip
    values.update(kw)
    usage.add(route_name, key_id, None if key_id is None else f"sy_k{key_id}", **values)


def test_many_records_are_written_in_one_transaction(meta: MetaStore) -> None:
    usage = UsageRecorder(meta.engine, start=False, metrics=usage_metrics(CollectorRegistry()),
                          wall=Wall())  # fmt: skip
    counted = commits(meta.engine)
    for i in range(500):
        add(usage, "chat" if i % 2 else "embed", key_id=i % 3 or None, latency_ms=float(i * 30),
            status=200 if i % 10 else 502, streamed=i % 4 == 0, cost=0.001)  # fmt: skip
    usage.flush()
    assert counted[0] == 1 and usage.batches == 1
    usage.flush()  # nothing pending: no transaction
    assert counted[0] == 1
    rows = query_usage(meta.engine)
    assert len(rows) == 6  # 2 routes x (key 1, key 2, no key)
    assert sum(r.requests for r in rows) == 500
    assert sum(r.errors for r in rows) == 50
    assert sum(r.streamed for r in rows) == 125
    assert sum(r.tokens_in for r in rows) == 5000 and sum(r.tokens_out for r in rows) == 10000
    assert sum(r.cost for r in rows) == pytest.approx(0.5)
    no_key = [r for r in rows if r.key_id == 0]
    assert {r.key_label for r in no_key} == {"-"}
    chat_1 = next(r for r in rows if r.route == "chat" and r.key_id == 1)
    latencies = [i * 30.0 for i in range(500) if i % 2 and i % 3 == 1]
    assert chat_1.requests == len(latencies)
    assert chat_1.latency_ms_mean == pytest.approx(sum(latencies) / len(latencies))
    assert chat_1.latency_ms_max == max(latencies)
    assert sum(chat_1.latency_buckets) == len(latencies)
    assert chat_1.latency_buckets[0] == sum(1 for v in latencies if v < 100)


def test_later_batches_add_to_the_same_minute_row(meta: MetaStore) -> None:
    wall = Wall()
    usage = UsageRecorder(meta.engine, start=False, wall=wall,
                          metrics=usage_metrics(CollectorRegistry()))  # fmt: skip
    add(usage, latency_ms=700.0)
    usage.flush()
    add(usage, latency_ms=20.0, tokens_in=5)
    usage.flush()
    wall.now += timedelta(minutes=1)
    add(usage)
    usage.flush()
    with meta.engine.connect() as conn:
        rows = conn.execute(sa.select(gateway_usage).order_by(gateway_usage.c.minute)).all()
    assert [r.requests for r in rows] == [2, 1]
    first = rows[0]
    assert first.minute == T0.replace(second=0) and first.key_label == "sy_k7"
    assert (first.tokens_in, first.latency_ms_max, first.lat_100ms, first.lat_2s) == (15, 700, 1, 1)
    assert query_usage(meta.engine, since=T0 + timedelta(minutes=1))[0].requests == 1
    assert query_usage(meta.engine, route="other") == []
    assert query_usage(meta.engine, key_id=7)[0].requests == 3


def test_the_writer_thread_flushes_on_count_and_close_flushes_the_rest(meta: MetaStore) -> None:
    usage = UsageRecorder(meta.engine, flush_seconds=60, flush_records=10,
                          metrics=usage_metrics(CollectorRegistry()))  # fmt: skip
    for _ in range(10):
        add(usage)
    deadline = time.monotonic() + 10
    while usage.batches == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert usage.batches == 1
    add(usage)
    add(usage)
    usage.close()  # the thread sleeps for 60 s: close() must write the two at once
    assert usage.batches == 2
    assert query_usage(meta.engine)[0].requests == 12


def test_the_writer_thread_flushes_every_interval(meta: MetaStore) -> None:
    usage = UsageRecorder(meta.engine, flush_seconds=0.05,
                          metrics=usage_metrics(CollectorRegistry()))  # fmt: skip
    try:
        add(usage)
        deadline = time.monotonic() + 10
        while usage.batches == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert query_usage(meta.engine)[0].requests == 1
    finally:
        usage.close()


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_database_that_is_down_never_stops_requests(tmp_path: Path) -> None:
    engine = sa.create_engine(
        f"postgresql+psycopg://nobody@127.0.0.1:{_refused_port()}/none",
        connect_args={"connect_timeout": 2},
    )
    admission = GatewayAdmission(engine, registry=CollectorRegistry(), start=False, max_rows=3)
    try:
        for i in range(10):
            r = route(f"r{i}")
            assert admission.admit(key(), r, estimated_tokens=5) is None
            admission.record(key(), r, status=200, latency_ms=3.0, tokens_in=1, tokens_out=2,
                             streamed=False)  # fmt: skip
        assert admission.usage.dropped == 7  # 3 rows fit in memory, the rest is counted
        admission.flush()  # fails, keeps the 3 rows, never raises
        assert admission.usage.failures == 1 and admission.budgets.failures >= 1
        assert admission.usage.dropped == 7
        assert admission.admit(key(), route("r0"), estimated_tokens=5) is None
    finally:
        admission.close()
        engine.dispose()


def test_a_failed_batch_is_written_when_the_database_is_back(tmp_path: Path) -> None:
    with MetaStore.open(f"sqlite:///{tmp_path}/meta.db") as meta:
        usage = UsageRecorder(meta.engine, start=False, wall=Wall(),
                              metrics=usage_metrics(CollectorRegistry()))  # fmt: skip
        with meta.engine.begin() as conn:  # the writes fail from now on
            conn.exec_driver_sql("ALTER TABLE gateway_usage RENAME TO gateway_usage_away")
        add(usage, tokens_in=3)
        usage.flush()
        assert usage.failures == 1 and usage.batches == 0
        add(usage, tokens_in=4)
        with meta.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE gateway_usage_away RENAME TO gateway_usage")
        usage.close()
        [row] = query_usage(meta.engine)
        assert (row.requests, row.tokens_in) == (2, 7) and usage.dropped == 0
        with meta.engine.connect() as conn:
            spent = conn.execute(sa.select(gateway_spend.c.tokens)).scalars().all()
        assert spent == [47, 47]  # (3 + 20) + (4 + 20), per day and per month


def test_metrics_name_keys_by_label_and_never_hold_a_secret(meta: MetaStore) -> None:
    keys = KeyStore(meta)
    record, plaintext = keys.create("web", ["route:*"])
    keys.close()
    registry = CollectorRegistry()
    admission = make_admission(meta, None, registry=registry, start=False)
    try:
        limited = route("chat", limits={"per_key": {"requests_per_minute": 1}})
        assert admission.admit(record, limited, estimated_tokens=10) is None
        admission.record(record, limited, status=200, latency_ms=120.0, tokens_in=11,
                         tokens_out=22, streamed=True)  # fmt: skip
        denied = admission.admit(record, limited, estimated_tokens=10)
        assert denied is not None and denied.status == 429 and denied.retry_after == 60
        assert denied.kind == "rate_limit_exceeded"
        # the proxy records the refused request too: counted once, as a denial
        admission.record(record, limited, status=429, latency_ms=0.2, tokens_in=None,
                         tokens_out=None, streamed=False)  # fmt: skip
        assert admission.limiter.in_flight(record.key_id) == 0
        admission.record(None, limited, status=401, latency_ms=1.0, tokens_in=None,
                         tokens_out=None, streamed=False)  # fmt: skip
    finally:
        admission.close()
    text = generate_latest(registry).decode()
    secret = plaintext.split("_", 2)[2]
    assert plaintext not in text and secret not in text
    label = record.label
    assert f'shipyard_gateway_requests_total{{key="{label}",route="chat",status="200"}} 1.0' in text
    assert f'shipyard_gateway_requests_total{{key="{label}",route="chat",status="429"}} 1.0' in text
    assert 'shipyard_gateway_requests_total{key="-",route="chat",status="401"} 1.0' in text
    assert f'tokens_total{{direction="in",key="{label}",route="chat"}} 11.0' in text
    assert f'tokens_total{{direction="out",key="{label}",route="chat"}} 22.0' in text
    assert 'denied_total{reason="key_requests_per_minute",route="chat"} 1.0' in text
    assert 'shipyard_gateway_latency_seconds_count{route="chat"} 2.0' in text
    [row] = [r for r in query_usage(meta.engine) if r.key_id == record.key_id]
    assert (row.requests, row.denied, row.errors, row.streamed) == (2, 1, 1, 1)
    assert row.latency_ms_mean == 120.0  # the refusal's latency is not counted


def test_a_clashing_metric_in_the_registry_does_not_stop_accounting(meta: MetaStore) -> None:
    from prometheus_client import Counter

    registry = CollectorRegistry()
    Counter("shipyard_gateway_requests", "the proxy's own", ["route", "code"], registry=registry)
    metrics = usage_metrics(registry)
    assert metrics.requests is None and metrics.tokens is not None
    usage = UsageRecorder(meta.engine, start=False, metrics=metrics)
    add(usage)
    usage.close()
    assert query_usage(meta.engine)[0].requests == 1


# --- the commands ---------------------------------------------------------------------------
@pytest.fixture
def cli(meta: MetaStore, db_url: str, monkeypatch: pytest.MonkeyPatch) -> click.Group:
    monkeypatch.setenv("SHIPYARD_DB_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    group = click.Group("gateway")
    for command in COMMANDS:
        group.add_command(command)
    return group


def invoke(group: click.Group, *args: str) -> click.testing.Result:
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def test_usage_command_lists_usage_per_route_and_key(meta: MetaStore, cli: click.Group) -> None:
    keys = KeyStore(meta)
    record, plaintext = keys.create("web", ["route:*"])
    keys.close()
    usage = UsageRecorder(meta.engine, start=False, metrics=usage_metrics(CollectorRegistry()))
    add(usage, "chat", record.key_id, tokens_in=123, tokens_out=456, latency_ms=250.0)
    add(usage, "embed", 99, tokens_in=5)
    usage.close()
    result = invoke(cli, "usage", "--since", "1h")
    assert result.exit_code == 0, result.output
    assert "chat" in result.output and "embed" in result.output and "123" in result.output
    assert plaintext not in result.output
    result = invoke(cli, "usage", "--key", record.label, "--json")
    [row] = json.loads(result.output)
    assert (row["route"], row["tokens_in"], row["tokens_out"]) == ("chat", 123, 456)
    assert row["latency_p50"] == "<500ms"
    assert json.loads(invoke(cli, "usage", "--route", "none", "--json").output) == []
    result = invoke(cli, "usage", "--key", "not-a-key")
    assert result.exit_code == 2 and "neither a key id nor a key prefix" in result.output
    result = invoke(cli, "usage", "--key", "sy_ffffffffffff")
    assert result.exit_code == 1 and "no key with id or prefix" in result.output


def test_budget_commands_set_list_and_clear(meta: MetaStore, cli: click.Group) -> None:
    keys = KeyStore(meta)
    record, _ = keys.create("web", ["route:*"])
    keys.close()
    result = invoke(cli, "budget", "set", str(record.key_id), "--tokens", "1000", "--period", "day")
    assert result.exit_code == 0, result.output
    assert "1000 tokens per day" in result.output
    result = invoke(cli, "budget", "set", record.label, "--period", "month", "--money", "2.5",
                    "--tokens", "50000")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(invoke(cli, "budget", "list", "--json").output)
    assert [(r["period"], r["tokens"], r["money"]) for r in rows] == [
        ("day", 1000, None),
        ("month", 50000, 2.5),
    ]
    assert rows[0]["key"] == record.label and rows[0]["tokens_spent"] == 0
    assert invoke(cli, "budget", "set", "1", "--period", "day").exit_code == 2  # no amount
    assert invoke(cli, "budget", "set", "1", "--tokens", "0", "--period", "day").exit_code == 2
    assert invoke(cli, "budget", "set", "1", "--tokens", "5", "--period", "week").exit_code == 2
    assert invoke(cli, "budget", "set", "42", "--tokens", "5", "--period", "day").exit_code == 1
    result = invoke(cli, "budget", "clear", record.label, "--period", "day")
    assert result.exit_code == 0 and "removed 1 budget" in result.output
    rows = json.loads(invoke(cli, "budget", "list", "--json").output)
    assert [r["period"] for r in rows] == ["month"]
    assert "month" in invoke(cli, "budget", "list").output
