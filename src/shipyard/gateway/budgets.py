"""Budgets: how many tokens (and how much money, on priced routes) a key may spend per period.

Budgets are set per key with ``shipyard gateway budget set KEY --tokens N --period day|month
[--money X]`` and kept in the metadata database (``gateway_budgets``); a key may have a daily
and a monthly budget at once. Periods are calendar UTC: a day starts at 00:00 UTC, a month on
its first day. A route's price table gives the money a request costs::

    prices: {input_per_1k: 0.15, output_per_1k: 0.60, currency: USD}   # per 1000 tokens

Tokens count on every route (in + out); money only on routes with ``prices``, and a money
budget only refuses requests to priced routes. Money is summed across routes as one unit:
give every priced route the same currency.

**Consistency.** The running totals (``gateway_spend``) are written with the usage batches
(every ~1 s). Each gateway process checks admissions against an in-memory :class:`BudgetView`:
the totals read from the database at its last refresh (every few seconds) plus what this
process has spent since. A key can therefore overshoot its budget by what its requests in
flight spend, plus what *other* processes spend within one flush + refresh interval. A request
is refused once the budget is used up (spent >= budget), not because its estimate would cross it.

**When the database is down** budgets fail *open*: the view keeps its last totals and keeps
adding this process's own spending, so each process still enforces the budget on what it
sees; the overshoot grows only with what other processes spend during the outage. Failing
closed would turn a metadata-DB hiccup into an outage of every budgeted key, while a budget is a
spending guard, not a security boundary (keys and scopes are, and they do fail closed).
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.store.engine import read_only
from shipyard.store.schema import gateway_budgets, gateway_spend

#: seconds between two reads of the budgets and totals from the database
DEFAULT_REFRESH_SECONDS = 5.0

_log = logging.getLogger(__name__)


class Period(enum.Enum):
    """A budget period, calendar UTC."""

    DAY = "day"
    MONTH = "month"

    def start(self, at: datetime) -> datetime:
        """The start of the period that contains ``at`` (UTC midnight / first of the month)."""
        at = at.astimezone(UTC)
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return day if self is Period.DAY else day.replace(day=1)

    def end(self, at: datetime) -> datetime:
        """The start of the next period."""
        start = self.start(at)
        if self is Period.DAY:
            return start + timedelta(days=1)
        return (start + timedelta(days=32)).replace(day=1)


def period_starts(at: datetime) -> tuple[tuple[Period, datetime], ...]:
    """Every period with the start of the one that contains ``at`` (as :meth:`Period.start`,
    worked out once per UTC day: this runs for every request)."""
    return _starts_on(at.astimezone(UTC).date())


@functools.lru_cache(maxsize=4)
def _starts_on(day: date) -> tuple[tuple[Period, datetime], ...]:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return tuple((period, period.start(midnight)) for period in Period)


class PriceTable(Protocol):
    """A route's ``prices`` (money per 1000 tokens): ``shipyard.gateway.config.Prices``."""

    @property
    def input_per_1k(self) -> float: ...

    @property
    def output_per_1k(self) -> float: ...


def cost(prices: PriceTable | None, tokens_in: int | None, tokens_out: int | None) -> float:
    """What a request cost on a route with ``prices`` (0 without a price table)."""
    if prices is None:
        return 0.0
    spent = (tokens_in or 0) * prices.input_per_1k + (tokens_out or 0) * prices.output_per_1k
    return spent / 1000.0


@dataclass(frozen=True)
class Budget:
    """One key's budget for one period; None means no cap of that kind."""

    key_id: int
    period: Period
    tokens: int | None
    money: float | None
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True)
class BudgetRefusal:
    """A used-up budget: ``reason`` is ``budget_tokens`` or ``budget_money``."""

    reason: str
    message: str
    retry_after: float


# --- the database side ----------------------------------------------------------------------
def set_budget(engine: Engine, budget: Budget, *, user: str, now: datetime | None = None) -> None:
    """Create or replace ``budget`` (one per key and period)."""
    if budget.tokens is None and budget.money is None:
        raise ValueError("a budget needs tokens and/or money; use clear_budget to remove one")
    values = {
        "tokens": budget.tokens,
        "money": budget.money,
        "updated_at": now or datetime.now(UTC),
        "updated_by": user,
    }
    where = (gateway_budgets.c.key_id == budget.key_id) & (
        gateway_budgets.c.period == budget.period.value
    )
    with engine.begin() as conn:
        if conn.execute(gateway_budgets.update().where(where).values(values)).rowcount == 0:
            conn.execute(
                gateway_budgets.insert().values(
                    key_id=budget.key_id, period=budget.period.value, **values
                )
            )


def clear_budget(engine: Engine, key_id: int, period: Period | None = None) -> int:
    """Remove a key's budget for ``period`` (None: every period); the number removed."""
    query = gateway_budgets.delete().where(gateway_budgets.c.key_id == key_id)
    if period is not None:
        query = query.where(gateway_budgets.c.period == period.value)
    with engine.begin() as conn:
        return conn.execute(query).rowcount


def list_budgets(engine: Engine, key_id: int | None = None) -> list[Budget]:
    """Every budget (or one key's), by key and period."""
    query = sa.select(gateway_budgets).order_by(gateway_budgets.c.key_id, gateway_budgets.c.period)
    if key_id is not None:
        query = query.where(gateway_budgets.c.key_id == key_id)
    with read_only(engine).connect() as conn:
        return [
            Budget(
                key_id=int(row.key_id),
                period=Period(row.period),
                tokens=None if row.tokens is None else int(row.tokens),
                money=row.money,
                updated_at=row.updated_at,
                updated_by=row.updated_by,
            )
            for row in conn.execute(query)
        ]


SpendKey = tuple[int, Period, datetime]  # key_id, period, period start


def read_spend(engine: Engine, at: datetime) -> dict[SpendKey, tuple[int, float]]:
    """The running totals of the periods containing ``at``: tokens and money per key."""
    starts = {period: period.start(at) for period in Period}
    query = sa.select(gateway_spend).where(gateway_spend.c.period_start >= min(starts.values()))
    spend: dict[SpendKey, tuple[int, float]] = {}
    with read_only(engine).connect() as conn:
        for row in conn.execute(query):
            period = Period(row.period)
            if row.period_start == starts[period]:
                spend[(int(row.key_id), period, row.period_start)] = (int(row.tokens), row.money)
    return spend


# --- the in-memory view ---------------------------------------------------------------------
class BudgetView:
    """Budgets and spending as this process sees them (see the module docstring).

    ``wall`` gives the UTC time (periods), ``clock`` monotonic seconds (refresh pacing); tests
    pass their own. :meth:`refresh` runs on the usage writer's thread, :meth:`check` and
    :meth:`spend` on the request path (no I/O).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self._engine = engine
        self.refresh_seconds = refresh_seconds
        self._wall = wall
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._budgets: dict[int, tuple[Budget, ...]] = {}
        self._stored: dict[SpendKey, tuple[int, float]] = {}
        self._local: dict[SpendKey, list[float]] = {}  # spent here, not yet in _stored
        self._committed: dict[SpendKey, list[float]] = {}  # written, not yet re-read
        self._refreshed_at: float | None = None
        self.failures = 0

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read budgets and totals if the last read is older than ``refresh_seconds``.
        Returns whether it read; a database error is logged and the old view kept."""
        now = self._clock()
        if not force and self._refreshed_at is not None:
            if now - self._refreshed_at < self.refresh_seconds:
                return False
        with self._lock:
            committed, self._committed = self._committed, {}
        try:
            budgets = list_budgets(self._engine)
            stored = read_spend(self._engine, self._wall())
        except Exception:
            self.failures += 1
            _log.warning("could not read gateway budgets; keeping the last view", exc_info=True)
            with self._lock:
                for slot, (tokens, money) in committed.items():
                    _add(self._committed, slot, tokens, money)
            return False
        grouped: dict[int, list[Budget]] = {}
        for budget in budgets:
            grouped.setdefault(budget.key_id, []).append(budget)
        with self._lock:
            for slot, (tokens, money) in committed.items():
                _add(self._local, slot, -tokens, -money)  # now part of `stored`
            self._budgets = {key: tuple(items) for key, items in grouped.items()}
            self._stored = stored
            current = {period.start(self._wall()) for period in Period}
            self._local = {s: v for s, v in self._local.items() if s[2] in current}
            self._refreshed_at = now
        return True

    def committed(self, spend: Mapping[SpendKey, tuple[int, float]]) -> None:
        """Note spending the usage writer has just committed (the next refresh reads it)."""
        with self._lock:
            for slot, (tokens, money) in spend.items():
                _add(self._committed, slot, tokens, money)

    def spend(self, key_id: int, tokens: int, money: float) -> None:
        """Count spending of this process at once (before it reaches the database)."""
        if tokens == 0 and money == 0:
            return
        starts = period_starts(self._wall())
        with self._lock:
            for period, start in starts:
                _add(self._local, (key_id, period, start), tokens, money)

    def spent(self, key_id: int, period: Period) -> tuple[int, float]:
        """Tokens and money this key has spent in the current ``period``, as seen here."""
        slot = (key_id, period, period.start(self._wall()))
        with self._lock:
            return self._spent(slot)

    def _spent(self, slot: SpendKey) -> tuple[int, float]:
        tokens, money = self._stored.get(slot, (0, 0.0))
        local = self._local.get(slot)
        if local is not None:
            tokens, money = tokens + int(local[0]), money + local[1]
        return tokens, money

    def check(self, key_id: int, label: str, *, priced: bool) -> BudgetRefusal | None:
        """The refusal if one of the key's budgets is used up (money only when ``priced``)."""
        budgets = self._budgets.get(key_id)
        if not budgets:
            return None
        at = self._wall()
        with self._lock:
            for budget in budgets:
                spent_tokens, spent_money = self._spent(
                    (key_id, budget.period, budget.period.start(at))
                )
                end = budget.period.end(at)
                wait = max(1.0, math.ceil((end - at).total_seconds()))
                when = f"resets at {end:%Y-%m-%d %H:%M} UTC"
                if budget.tokens is not None and spent_tokens >= budget.tokens:
                    return BudgetRefusal(
                        "budget_tokens",
                        f"key {label} has used its budget of {budget.tokens} tokens per "
                        f"{budget.period.value} ({spent_tokens} spent); it {when}",
                        wait,
                    )
                if priced and budget.money is not None and spent_money >= budget.money:
                    return BudgetRefusal(
                        "budget_money",
                        f"key {label} has used its budget of {budget.money:g} per "
                        f"{budget.period.value} ({spent_money:.4g} spent); it {when}",
                        wait,
                    )
        return None


def _add(into: dict[SpendKey, list[float]], slot: SpendKey, tokens: float, money: float) -> None:
    entry = into.get(slot)
    if entry is None:
        into[slot] = [tokens, money]
    else:
        entry[0] += tokens
        entry[1] += money


__all__ = [
    "DEFAULT_REFRESH_SECONDS",
    "Budget",
    "BudgetRefusal",
    "BudgetView",
    "Period",
    "PriceTable",
    "SpendKey",
    "clear_budget",
    "cost",
    "list_budgets",
    "period_starts",
    "read_spend",
    "set_budget",
]
