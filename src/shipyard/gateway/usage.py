"""Usage accounting: per key and route, in memory, written to the database in batches.

:meth:`UsageRecorder.add` runs on the request path: it updates the Prometheus metrics and adds
the request to an in-memory row per minute x route x key, under a lock held for microseconds,
and never touches the database. A writer thread upserts the pending rows into
``gateway_usage`` (and the budgets' running totals into ``gateway_spend``) in ONE transaction
every ``flush_seconds`` (1 s), or sooner once ``flush_records`` requests are pending.

Pending rows are bounded (``max_rows``). When the database is down a batch that failed is
kept for the next attempt while it fits; past the bound, requests are dropped from accounting
and counted (:attr:`UsageRecorder.dropped`, ``shipyard_gateway_usage_dropped_total``), and
requests keep flowing: accounting fails open. :meth:`UsageRecorder.close` writes what is left.

Latency is kept as a sum, a max and five non-cumulative buckets (< 100 ms, < 500 ms, < 2 s,
< 10 s, longer) per row: the mean is exact, percentiles are bucket bounds (Prometheus'
``shipyard_gateway_latency_seconds`` histogram has the finer view).

Prometheus metrics (the default registry unless one is given; see
:class:`~shipyard.gateway.metrics.UsageMetrics`):
``shipyard_gateway_requests_total{route,key,status}``,
``shipyard_gateway_tokens_total{route,key,direction}`` (``in``/``out``),
``shipyard_gateway_latency_seconds{route}``, ``shipyard_gateway_denied_total{route,reason}``,
``shipyard_gateway_usage_dropped_total``. ``key`` is the key's ``sy_<prefix>`` label (``-``
without a key): never a secret.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipyard.gateway.budgets import SpendKey, period_starts
from shipyard.gateway.metrics import UsageMetrics, usage_metrics
from shipyard.store.engine import read_only
from shipyard.store.schema import gateway_spend, gateway_usage

#: the key_id and label of requests without a (valid) key
NO_KEY_ID = 0
NO_KEY_LABEL = "-"
#: upper bounds (ms) of the latency bucket columns; the last column counts the rest
LATENCY_BUCKETS_MS = (100.0, 500.0, 2000.0, 10000.0)
_BUCKET_COLUMNS = ("lat_100ms", "lat_500ms", "lat_2s", "lat_10s", "lat_inf")
_COUNT_COLUMNS = ("requests", "errors", "denied", "streamed", "tokens_in", "tokens_out")
_SUM_COLUMNS = (*_COUNT_COLUMNS, "cost", "latency_ms_sum", *_BUCKET_COLUMNS)

_log = logging.getLogger(__name__)


@dataclass
class _Row:
    key_label: str
    records: int = 0
    values: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_SUM_COLUMNS, 0))
    latency_ms_max: float = 0.0

    def merge(self, other: _Row) -> None:
        self.records += other.records
        for name, value in other.values.items():
            self.values[name] += value
        self.latency_ms_max = max(self.latency_ms_max, other.latency_ms_max)


_Slot = tuple[datetime, str, int]  # minute, route, key_id


def _bucket_column(latency_ms: float) -> str:
    for bound, column in zip(LATENCY_BUCKETS_MS, _BUCKET_COLUMNS, strict=False):
        if latency_ms < bound:
            return column
    return _BUCKET_COLUMNS[-1]


class UsageRecorder:
    """Aggregates requests in memory and writes them in batches (see the module docstring).

    >>> usage = UsageRecorder(meta.engine)                   # doctest: +SKIP
    >>> usage.add("chat", 7, "sy_3f9a0c12ab34", status=200, latency_ms=120.0,
    ...           tokens_in=12, tokens_out=40, streamed=False, cost=0.0)   # doctest: +SKIP
    >>> usage.close()                                        # doctest: +SKIP

    ``on_flush`` runs on the writer thread after every write attempt with the spending just
    committed (empty after a failure); the budgets use it to refresh their view.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        flush_seconds: float = 1.0,
        flush_records: int = 1000,
        max_rows: int = 10_000,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_flush: Callable[[Mapping[SpendKey, tuple[int, float]]], None] | None = None,
        metrics: UsageMetrics | None = None,
        start: bool = True,
    ) -> None:
        self._engine = engine
        self.metrics = metrics or usage_metrics()
        self.flush_seconds = flush_seconds
        self.flush_records = flush_records
        self.max_rows = max_rows
        self._wall = wall
        self._on_flush = on_flush
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._rows: dict[_Slot, _Row] = {}
        self._spend: dict[SpendKey, list[float]] = {}
        self._pending = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._metric_children: dict[tuple[object, ...], Any] = {}
        #: requests left out of the tables (database unreachable and the buffer full)
        self.dropped = 0
        #: write transactions committed, and failed
        self.batches = 0
        self.failures = 0
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(
                target=self._run, name="shipyard-gateway-usage", daemon=True
            )
            self._thread.start()

    # --- the request path -----------------------------------------------------------------
    def add(
        self,
        route: str,
        key_id: int | None,
        key_label: str | None,
        *,
        status: int,
        latency_ms: float,
        tokens_in: int | None,
        tokens_out: int | None,
        streamed: bool,
        cost: float,
        denied: str | None = None,
        charged: int | None = None,
    ) -> None:
        """Count one finished (or refused: ``denied`` = the reason) request. ``charged`` is
        the tokens counted against the key's budgets (default: in + out; the estimate when
        the upstream reported none). Never blocks on I/O, never raises on a full buffer."""
        label = key_label or NO_KEY_LABEL
        self._observe(route, label, status, latency_ms, tokens_in, tokens_out, denied)
        key = key_id if key_id is not None else NO_KEY_ID
        now = self._wall()
        minute = now.astimezone(UTC).replace(second=0, microsecond=0)
        slot = (minute, route, key)
        tokens_in, tokens_out = tokens_in or 0, tokens_out or 0
        with self._lock:
            row = self._rows.get(slot)
            if row is None:
                if len(self._rows) >= self.max_rows:
                    self.dropped += 1
                    if self.metrics.dropped is not None:
                        self.metrics.dropped.inc()
                    return
                row = self._rows[slot] = _Row(label)
            values = row.values
            row.records += 1
            values["requests"] += 1
            values["errors"] += status >= 400
            values["denied"] += denied is not None
            values["streamed"] += streamed
            values["tokens_in"] += tokens_in
            values["tokens_out"] += tokens_out
            values["cost"] += cost
            if denied is None:  # a refusal's latency says nothing about the route
                values["latency_ms_sum"] += latency_ms
                values[_bucket_column(latency_ms)] += 1
                row.latency_ms_max = max(row.latency_ms_max, latency_ms)
            budgeted = tokens_in + tokens_out if charged is None else charged
            if key != NO_KEY_ID and (budgeted or cost):
                for period, start in period_starts(now):
                    spend_slot = (key, period, start)
                    entry = self._spend.setdefault(spend_slot, [0, 0.0])
                    entry[0] += budgeted
                    entry[1] += cost
            self._pending += 1
            full = self._pending >= self.flush_records
        if full:
            self._wake.set()

    def _child(self, metric: Any, *labels: str) -> Any:
        # labels() costs a few microseconds per call: keep the children
        slot = (id(metric), *labels)
        child = self._metric_children.get(slot)
        if child is None:
            child = self._metric_children[slot] = metric.labels(*labels)
        return child

    def _observe(
        self,
        route: str,
        label: str,
        status: int,
        latency_ms: float,
        tokens_in: int | None,
        tokens_out: int | None,
        denied: str | None,
    ) -> None:
        m = self.metrics
        if m.requests is not None:
            self._child(m.requests, route, label, str(status)).inc()
        if m.tokens is not None:
            if tokens_in:
                self._child(m.tokens, route, label, "in").inc(tokens_in)
            if tokens_out:
                self._child(m.tokens, route, label, "out").inc(tokens_out)
        if denied is not None:
            if m.denied is not None:
                self._child(m.denied, route, denied).inc()
        elif m.latency is not None:
            self._child(m.latency, route).observe(latency_ms / 1000.0)

    # --- the writer -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.flush()

    def flush(self) -> None:
        """Write every pending row now, in one transaction (on the calling thread)."""
        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, {}
                spend, self._spend = self._spend, {}
                self._pending = 0
            committed: dict[SpendKey, tuple[int, float]] = {}
            if rows or spend:
                try:
                    with self._engine.begin() as conn:
                        _write(conn, rows, spend, self._wall())
                except Exception:
                    self.failures += 1
                    _log.warning("could not write gateway usage; will retry", exc_info=True)
                    self._keep(rows, spend)
                else:
                    self.batches += 1
                    committed = {s: (int(v[0]), v[1]) for s, v in spend.items()}
            if self._on_flush is not None:
                try:
                    self._on_flush(committed)
                except Exception:
                    _log.warning("gateway usage flush hook failed", exc_info=True)

    def _keep(self, rows: dict[_Slot, _Row], spend: dict[SpendKey, list[float]]) -> None:
        """Put a failed batch back for the next attempt, or drop (and count) what does not fit."""
        with self._lock:
            for slot, row in rows.items():
                mine = self._rows.get(slot)
                if mine is not None:
                    mine.merge(row)
                elif len(self._rows) < self.max_rows:
                    self._rows[slot] = row
                else:
                    self.dropped += row.records
                    if self.metrics.dropped is not None:
                        self.metrics.dropped.inc(row.records)
            # totals are small (two per key) and feed the budgets: always kept
            for spend_slot, (tokens, money) in spend.items():
                entry = self._spend.setdefault(spend_slot, [0, 0.0])
                entry[0] += tokens
                entry[1] += money

    def close(self) -> None:
        """Stop the writer thread and write what is pending (one last attempt)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()


def _write(
    conn: Connection,
    rows: Mapping[_Slot, _Row],
    spend: Mapping[SpendKey, list[float]],
    now: datetime,
) -> None:
    if rows:
        params = [
            {
                "minute": minute,
                "route": route,
                "key_id": key_id,
                "key_label": row.key_label,
                **row.values,
                "latency_ms_max": row.latency_ms_max,
            }
            for (minute, route, key_id), row in rows.items()
        ]
        _upsert(conn, gateway_usage, params, ["minute", "route", "key_id"], _SUM_COLUMNS)
    if spend:
        params = [
            {
                "key_id": key_id,
                "period": period.value,
                "period_start": start,
                "tokens": int(tokens),
                "money": money,
                "updated_at": now,
            }
            for (key_id, period, start), (tokens, money) in spend.items()
        ]
        _upsert(
            conn, gateway_spend, params, ["key_id", "period", "period_start"], ("tokens", "money")
        )


def _upsert(
    conn: Connection,
    table: sa.Table,
    params: list[dict[str, Any]],
    keys: list[str],
    summed: tuple[str, ...],
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE adding ``summed`` (and keeping the latest label and
    the max latency), for SQLite and PostgreSQL, as one executemany."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table)
        greatest: Any = sa.func.greatest
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
        greatest = sa.func.max  # SQLite's two-argument max() is a scalar
    new = stmt.excluded
    update: dict[str, Any] = {name: table.c[name] + new[name] for name in summed}
    if "latency_ms_max" in table.c:
        update["latency_ms_max"] = greatest(table.c.latency_ms_max, new.latency_ms_max)
    for name in ("key_label", "updated_at"):
        if name in table.c:
            update[name] = new[name]
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update), params)


# --- reading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class UsageSummary:
    """Usage of one route by one key over a time range."""

    route: str
    key_id: int
    key_label: str
    requests: int
    errors: int
    denied: int
    streamed: int
    tokens_in: int
    tokens_out: int
    cost: float
    latency_ms_mean: float
    latency_ms_max: float
    latency_buckets: tuple[int, ...]

    def latency_percentile_bound(self, q: float) -> str:
        """An upper bound of the ``q`` quantile (``"<500ms"``) from the bucket counts."""
        served = sum(self.latency_buckets)
        if served == 0:
            return "-"
        seen = 0
        for count, bound in zip(self.latency_buckets, (*LATENCY_BUCKETS_MS, None), strict=True):
            seen += count
            if seen >= q * served:
                return f"<{bound:g}ms" if bound is not None else f">={LATENCY_BUCKETS_MS[-1]:g}ms"
        return "-"


def query_usage(
    engine: Engine,
    *,
    since: datetime | None = None,
    route: str | None = None,
    key_id: int | None = None,
) -> list[UsageSummary]:
    """Usage per route and key since ``since`` (minute rows that start at or after it)."""
    c = gateway_usage.c
    sums = [sa.func.sum(c[name]).label(name) for name in _SUM_COLUMNS]
    query = (
        sa.select(
            c.route,
            c.key_id,
            sa.func.max(c.key_label).label("key_label"),
            *sums,
            sa.func.max(c.latency_ms_max).label("latency_ms_max"),
        )  # fmt: skip
        .group_by(c.route, c.key_id)
        .order_by(c.route, c.key_id)
    )
    if since is not None:
        query = query.where(c.minute >= since.astimezone(UTC).replace(second=0, microsecond=0))
    if route is not None:
        query = query.where(c.route == route)
    if key_id is not None:
        query = query.where(c.key_id == key_id)
    with read_only(engine).connect() as conn:
        result = conn.execute(query).all()
    summaries = []
    for row in result:
        served = sum(int(row._mapping[name]) for name in _BUCKET_COLUMNS)
        summaries.append(
            UsageSummary(
                route=row.route,
                key_id=int(row.key_id),
                key_label=row.key_label,
                **{name: int(row._mapping[name]) for name in _COUNT_COLUMNS},
                cost=float(row.cost),
                latency_ms_mean=float(row.latency_ms_sum) / served if served else 0.0,
                latency_ms_max=float(row.latency_ms_max),
                latency_buckets=tuple(int(row._mapping[name]) for name in _BUCKET_COLUMNS),
            )
        )
    return summaries


__all__ = [
    "LATENCY_BUCKETS_MS",
    "NO_KEY_ID",
    "NO_KEY_LABEL",
    "UsageMetrics",
    "UsageRecorder",
    "UsageSummary",
    "usage_metrics",
    "query_usage",
]
