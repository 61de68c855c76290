"""Budgets through the Admission: tokens per calendar UTC day / month with a hand-moved
clock, money on priced routes, two gateway processes sharing one database, and failing open
(with local counting) when the database is down. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from test_usage import Wall, key, route

from shipyard.gateway.admission import GatewayAdmission, make_admission
from shipyard.gateway.budgets import Budget, Period, cost, list_budgets, set_budget
from shipyard.gateway.limits import LimitsError
from shipyard.gateway.model import Prices
from shipyard.keys import KeyRecord
from shipyard.store.meta import MetaStore
from support.clock import Clock
from support.servers import pg_schema_url

T0 = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # an hour before a new day and a new month


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def meta(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MetaStore]:
    """An empty metadata store: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    if request.param == "sqlite":
        url = f"sqlite:///{os.fspath(tmp_path)}/meta.db"
    else:
        url = pg_schema_url(request.getfixturevalue("pg_database"))
    with MetaStore.open(url) as store:
        yield store


@pytest.fixture
def wall() -> Wall:
    return Wall(T0)


@pytest.fixture
def admission(meta: MetaStore, wall: Wall) -> Iterator[GatewayAdmission]:
    made = make_admission(meta, None, registry=CollectorRegistry(), start=False, wall=wall,
                          clock=Clock())  # fmt: skip
    try:
        yield made
    finally:
        made.close()


def spend(admission: GatewayAdmission, who: KeyRecord, tokens_in: int, tokens_out: int,
          **kw: object) -> None:  # fmt: skip
    r = route(**kw)  # type: ignore[arg-type]
    assert admission.admit(who, r, estimated_tokens=1) is None
    admission.record(who, r, status=200, latency_ms=5.0, tokens_in=tokens_in,
                     tokens_out=tokens_out, streamed=False)  # fmt: skip


def test_periods_are_calendar_utc() -> None:
    at = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert Period.DAY.start(at) == datetime(2026, 12, 31, tzinfo=UTC)
    assert Period.DAY.end(at) == datetime(2027, 1, 1, tzinfo=UTC)
    assert Period.MONTH.start(at) == datetime(2026, 12, 1, tzinfo=UTC)
    assert Period.MONTH.end(at) == datetime(2027, 1, 1, tzinfo=UTC)
    assert Period.MONTH.end(datetime(2027, 1, 31, tzinfo=UTC)) == datetime(2027, 2, 1, tzinfo=UTC)


def test_a_token_budget_refuses_until_the_day_rolls_over(
    meta: MetaStore, admission: GatewayAdmission, wall: Wall
) -> None:
    who = key()
    set_budget(meta.engine, Budget(who.key_id, Period.DAY, tokens=100, money=None), user="ann")
    admission.flush()  # refreshes the view
    spend(admission, who, 60, 30)
    spend(admission, who, 5, 5)  # 100 spent: the next is refused, at once (no DB round trip)
    denied = admission.admit(who, route(), estimated_tokens=1)
    assert denied is not None and denied.status == 429 and denied.kind == "insufficient_quota"
    assert denied.retry_after == 3600  # until midnight UTC
    assert "100 tokens per day" in denied.message and who.label in denied.message
    admission.flush()  # written and re-read: still exactly 100, not counted twice
    assert admission.budgets.spent(who.key_id, Period.DAY) == (100, 0.0)
    assert admission.admit(who, route(), estimated_tokens=1) is not None
    assert admission.admit(key(8, "ba9876543210"), route(), estimated_tokens=1) is None
    wall.now += timedelta(hours=1)
    assert admission.admit(who, route(), estimated_tokens=1) is None
    assert admission.budgets.spent(who.key_id, Period.DAY) == (0, 0.0)


def test_a_monthly_budget_spans_days(
    meta: MetaStore, admission: GatewayAdmission, wall: Wall
) -> None:
    who = key()
    wall.now = datetime(2026, 11, 3, 12, tzinfo=UTC)
    set_budget(meta.engine, Budget(who.key_id, Period.MONTH, tokens=50, money=None), user="ann")
    admission.flush()
    spend(admission, who, 30, 0)
    wall.now += timedelta(days=2)
    spend(admission, who, 20, 0)
    admission.flush()
    denied = admission.admit(who, route(), estimated_tokens=1)
    assert (
        denied is not None
        and denied.retry_after == (datetime(2026, 12, 1, tzinfo=UTC) - wall.now).total_seconds()
    )
    wall.now = datetime(2026, 12, 1, tzinfo=UTC)
    assert admission.admit(who, route(), estimated_tokens=1) is None


def test_a_money_budget_counts_priced_routes_only(
    meta: MetaStore, admission: GatewayAdmission
) -> None:
    who = key()
    prices = Prices(input_per_1k=1.0, output_per_1k=2.0)
    assert cost(prices, 5, 3) == pytest.approx(0.011)
    set_budget(meta.engine, Budget(who.key_id, Period.MONTH, tokens=None, money=0.01), user="x")
    admission.flush()
    spend(admission, who, 1000, 1000)  # free route: no money spent
    assert admission.admit(who, route("paid", prices=prices), estimated_tokens=1) is None
    admission.record(who, route("paid", prices=prices), status=200, latency_ms=1.0,
                     tokens_in=5, tokens_out=3, streamed=False)  # fmt: skip
    denied = admission.admit(who, route("paid", prices=prices), estimated_tokens=1)
    assert denied is not None and "budget of 0.01 per month" in denied.message
    assert admission.admit(who, route("free"), estimated_tokens=1) is None
    admission.flush()
    assert admission.budgets.spent(who.key_id, Period.MONTH) == (2008, pytest.approx(0.011))


def test_two_processes_share_budgets_through_the_database(
    meta: MetaStore, admission: GatewayAdmission, wall: Wall
) -> None:
    who = key()
    set_budget(meta.engine, Budget(who.key_id, Period.DAY, tokens=100, money=None), user="ann")
    other = make_admission(meta, None, registry=CollectorRegistry(), start=False, wall=wall)
    try:
        admission.flush()
        spend(other, who, 80, 0)
        spend(admission, who, 10, 0)
        assert admission.admit(who, route(), estimated_tokens=1) is None  # 80 not seen yet
        other.flush()  # written by the other process...
        admission.flush()  # ...and read by this one: 90 + 10 more = 100
        spend(admission, who, 10, 0)
        assert admission.admit(who, route(), estimated_tokens=1) is not None
        assert other.admit(who, route(), estimated_tokens=1) is None  # sees 90 so far
        other.record(
            who,
            route(),
            status=200,
            latency_ms=1.0,
            tokens_in=None,
            tokens_out=None,
            streamed=False,
        )  # no usage reported: the estimate (1 token) is charged
        admission.flush()
        other.flush()
        assert other.admit(who, route(), estimated_tokens=1) is not None
        assert other.budgets.spent(who.key_id, Period.DAY) == (101, 0.0)
        admission.flush()  # the estimate reached the database too
        assert admission.budgets.spent(who.key_id, Period.DAY) == (101, 0.0)
    finally:
        other.close()


def test_budgets_fail_open_but_keep_counting_locally(
    meta: MetaStore, admission: GatewayAdmission
) -> None:
    who, friend = key(), key(8, "ba9876543210")
    for k in (who, friend):
        set_budget(meta.engine, Budget(k.key_id, Period.DAY, tokens=100, money=None), user="a")
    admission.flush()
    with meta.engine.begin() as conn:  # the database "goes away" for the accounting tables
        for table in ("gateway_usage", "gateway_spend", "gateway_budgets"):
            conn.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        spend(admission, who, 100, 0)
        admission.flush()  # both the write and the refresh fail; nothing raises
        assert admission.usage.failures == 1 and admission.budgets.failures == 1
        # the last view plus this process's own spending still holds...
        assert admission.admit(who, route(), estimated_tokens=1) is not None
        # ...and other keys keep working
        assert admission.admit(friend, route(), estimated_tokens=1) is None
    finally:
        with meta.engine.begin() as conn:
            for table in ("gateway_usage", "gateway_spend", "gateway_budgets"):
                conn.exec_driver_sql(f"ALTER TABLE {table}_away RENAME TO {table}")
    admission.record(friend, route(), status=200, latency_ms=1.0, tokens_in=0, tokens_out=0,
                     streamed=False)  # fmt: skip
    admission.flush()  # back: the kept batch is written, the view re-read, nothing doubled
    assert admission.budgets.spent(who.key_id, Period.DAY) == (100, 0.0)


def test_set_budget_replaces_and_route_limits_are_checked_at_start(meta: MetaStore) -> None:
    set_budget(meta.engine, Budget(7, Period.DAY, tokens=1, money=None), user="a")
    set_budget(meta.engine, Budget(7, Period.DAY, tokens=2, money=3.0), user="b")
    [budget] = list_budgets(meta.engine)
    assert (budget.tokens, budget.money, budget.updated_by) == (2, 3.0, "b")
    with pytest.raises(ValueError, match="tokens and/or money"):
        set_budget(meta.engine, Budget(7, Period.DAY, tokens=None, money=None), user="a")

    class Config:
        routes = {"chat": route("chat", limits={"requests_per_minute": -1})}

    with pytest.raises(LimitsError, match="'chat'.*requests_per_minute is -1"):
        make_admission(meta, Config(), registry=CollectorRegistry(), start=False)
