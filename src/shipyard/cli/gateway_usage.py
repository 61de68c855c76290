"""``shipyard gateway usage`` and ``shipyard gateway budget set/clear/list``.

Both read and write the metadata database directly (``SHIPYARD_DB_URL`` or the SQLite
default); a running gateway picks up a budget change within its refresh interval (5 s).
Keys are named by id or ``sy_<prefix>``, never by their secret.

Errors: a malformed key reference or option exits 2 (usage); an unknown key or a store
problem exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import click
from rich.table import Table

from shipyard.cli._common import DurationType, exits, make_console
from shipyard.keys import KeyInputError, KeyRecord, KeysError, KeyStore
from shipyard.store.meta import MetaStore

_friendly = exits(usage=(KeyInputError,), runtime=(KeysError,))


@contextmanager
def _meta() -> Iterator[MetaStore]:
    with MetaStore.open() as meta:
        yield meta


def _key(meta: MetaStore, ref: str) -> KeyRecord:
    keys = KeyStore(meta)
    try:
        return keys.get(ref)
    finally:
        keys.close()


@click.command("usage")
@click.option("--route", default=None, help="Only this route.")
@click.option(
    "--key", "key_ref", default=None, metavar="KEY", help="Only this key (id or sy_ prefix)."
)
@click.option(
    "--since",
    type=DurationType(),
    default="24h",
    show_default=True,
    metavar="DURATION",
    help="How far back, e.g. 1h, 7d (whole minutes).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly
def usage_command(route: str | None, key_ref: str | None, since: timedelta, as_json: bool) -> None:
    """Gateway usage per route and key: requests, errors, tokens, cost, latency."""
    from shipyard.gateway.usage import query_usage

    start = datetime.now(UTC) - since
    with _meta() as meta:
        key_id = _key(meta, key_ref).key_id if key_ref is not None else None
        rows = query_usage(meta.engine, since=start, route=route, key_id=key_id)
    if as_json:
        click.echo(json.dumps([
            {
                "route": r.route, "key_id": r.key_id, "key": r.key_label, "requests": r.requests,
                "errors": r.errors, "denied": r.denied, "streamed": r.streamed,
                "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "cost": r.cost,
                "latency_ms_mean": r.latency_ms_mean, "latency_ms_max": r.latency_ms_max,
                "latency_p50": r.latency_percentile_bound(0.5),
                "latency_p95": r.latency_percentile_bound(0.95),
            }
            for r in rows
        ], indent=2))  # fmt: skip
        return
    if not rows:
        click.echo(f"no gateway usage since {start:%Y-%m-%d %H:%M} UTC")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("route", "key", "requests", "errors", "denied", "streamed", "tokens in",
                   "tokens out", "cost", "mean ms", "p50", "p95"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("route", "key") else "right")
    for r in rows:
        table.add_row(
            r.route, r.key_label, str(r.requests), str(r.errors), str(r.denied), str(r.streamed),
            str(r.tokens_in), str(r.tokens_out), f"{r.cost:.4g}", f"{r.latency_ms_mean:.1f}",
            r.latency_percentile_bound(0.5), r.latency_percentile_bound(0.95),
        )  # fmt: skip
    make_console().print(table)


@click.group("budget")
def budget_group() -> None:
    """Token and money budgets per key and period (calendar UTC day or month).

    \b
    Examples:
      shipyard gateway budget set sy_3f9a0c12ab34 --tokens 1000000 --period day
      shipyard gateway budget set 7 --tokens 20000000 --period month --money 50
      shipyard gateway budget list
      shipyard gateway budget clear 7 --period day
    """


@budget_group.command("set")
@click.argument("key_ref", metavar="KEY")
@click.option("--tokens", type=click.IntRange(min=1), default=None, help="Tokens (in + out).")
@click.option(
    "--period", type=click.Choice(["day", "month"]), required=True, help="Calendar UTC period."
)
@click.option(
    "--money",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Money, in the routes' price units (counted on routes with `prices`).",
)
@_friendly
def set_command(key_ref: str, tokens: int | None, period: str, money: float | None) -> None:
    """Set KEY's budget for a period (id or sy_ prefix); replaces the one it had."""
    from shipyard.config import current_user
    from shipyard.gateway.budgets import Budget, Period, set_budget

    if tokens is None and money is None:
        raise click.UsageError("give --tokens N and/or --money X")
    with _meta() as meta:
        key = _key(meta, key_ref)
        set_budget(
            meta.engine, Budget(key.key_id, Period(period), tokens, money), user=current_user()
        )
    parts = [f"{tokens} tokens"] if tokens is not None else []
    parts += [f"{money:g} money"] if money is not None else []
    click.echo(f"budget of key {key.key_id} {key.label}: {' and '.join(parts)} per {period} (UTC)")


@budget_group.command("clear")
@click.argument("key_ref", metavar="KEY")
@click.option("--period", type=click.Choice(["day", "month"]), default=None, help="Only this one.")
@_friendly
def clear_command(key_ref: str, period: str | None) -> None:
    """Remove KEY's budgets (every period unless --period)."""
    from shipyard.gateway.budgets import Period, clear_budget

    with _meta() as meta:
        key = _key(meta, key_ref)
        removed = clear_budget(meta.engine, key.key_id, Period(period) if period else None)
    click.echo(f"removed {removed} budget(s) of key {key.key_id} {key.label}")


@budget_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly
def list_command(as_json: bool) -> None:
    """Every budget with what has been spent in the current period."""
    from shipyard.gateway.budgets import list_budgets, read_spend

    now = datetime.now(UTC)
    with _meta() as meta:
        budgets = list_budgets(meta.engine)
        spend = read_spend(meta.engine, now)
        labels = {k.key_id: k.label for k in KeyStore(meta).list(include_revoked=True)}
    rows = []
    for b in budgets:
        tokens, money = spend.get((b.key_id, b.period, b.period.start(now)), (0, 0.0))
        rows.append({
            "key_id": b.key_id, "key": labels.get(b.key_id, "?"), "period": b.period.value,
            "tokens": b.tokens, "tokens_spent": tokens, "money": b.money, "money_spent": money,
            "resets_at": b.period.end(now).isoformat(),
        })  # fmt: skip
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no budgets: `shipyard gateway budget set KEY --tokens N --period day`")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "key", "period", "tokens", "spent", "money", "spent", "resets"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["key_id"]), str(row["key"]), str(row["period"]),
            "-" if row["tokens"] is None else str(row["tokens"]), str(row["tokens_spent"]),
            "-" if row["money"] is None else f"{row['money']:g}", f"{row['money_spent']:.4g}",
            str(row["resets_at"])[:16].replace("T", " "),
        )  # fmt: skip
    make_console().print(table)


#: to register under the `gateway` group: `shipyard gateway usage`, `shipyard gateway budget`
COMMANDS: list[click.Command] = [usage_command, budget_group]

__all__ = ["COMMANDS", "budget_group", "usage_command"]
