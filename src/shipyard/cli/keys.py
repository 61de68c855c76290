"""``shipyard keys``: create, list and revoke API keys (in the metadata database).

``create`` prints a summary and then the new key alone on the last line, so scripts can do
``KEY=$(shipyard keys create --scope invoke:ranker | tail -1)``; the key is shown only then.
``list`` never shows a key or its hash, only its ``sy_<prefix>`` label. ``revoke`` warns (on
stderr) when the key was the last active ``invoke`` (or ``ui``) key: a running host then
opens service calls (or the UI) to loopback clients without a key again.

Errors: a malformed scope, name, expiry or key reference exits 2 (usage); an unknown key or a
store problem exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from shipyard.cli._common import DurationType, exits, make_console
from shipyard.keys import KeyInputError, KeyRecord, KeysError, KeyStore, reopened_warning
from shipyard.keys.scopes import INVOKE, UI
from shipyard.keys.store import DEFAULT_CACHE_TTL

#: malformed input exits 2, everything else 1
_friendly = exits(usage=(KeyInputError,), runtime=(KeysError,))
#: scope prefixes whose last key's revocation opens keyless loopback access again
_OPEN_WITHOUT_KEYS = (f"{INVOKE}:", UI)


@contextmanager
def _key_store() -> Iterator[KeyStore]:
    from shipyard.store.meta import MetaStore

    with MetaStore.open() as meta, KeyStore(meta) as keys:
        yield keys


def _when(value: datetime | None, empty: str = "-") -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else empty


def _state(record: KeyRecord, now: datetime) -> str:
    if record.revoked_at is not None:
        return "revoked"
    return "expired" if record.is_expired(now) else "active"


def _to_json(record: KeyRecord, now: datetime) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": record.key_id,
        "name": record.name,
        "prefix": record.label,
        "scopes": list(record.scopes),
        "state": _state(record, now),
        "created_at": iso(record.created_at),
        "created_by": record.created_by,
        "expires_at": iso(record.expires_at),
        "last_used_at": iso(record.last_used_at),
        "revoked_at": iso(record.revoked_at),
    }


@click.group("keys")
def keys_group() -> None:
    """API keys for services, gateway routes, the UI and the admin API.

    \b
    Scopes: admin, invoke:<service>, invoke:*, route:<route>, route:*, ui.
    Examples:
      KEY=$(shipyard keys create --scope invoke:ranker --name web | tail -1)
      shipyard keys list
      shipyard keys revoke sy_3f9a0c12ab34
    """


@keys_group.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="What the key may do (repeatable): admin, invoke:SERVICE, invoke:*, route:ROUTE, "
    "route:*, ui, events:publish.",
)
@click.option("--name", default="", help="A label for lists (who or what uses the key).")
@click.option(
    "--expires",
    type=DurationType(),
    default=None,
    metavar="DURATION",
    help="Lifetime, e.g. 30d, 12h, 1h30m (default: never expires).",
)
@_friendly
def create_command(scopes: tuple[str, ...], name: str, expires: timedelta | None) -> None:
    """Create a key; the key itself is printed once, alone on the last line."""
    if not scopes:
        raise click.UsageError(
            "give at least one --scope, e.g. `shipyard keys create --scope invoke:ranker`"
        )
    with _key_store() as keys:
        record, plaintext = keys.create(name, scopes, expires=expires)
    expiry = _when(record.expires_at, "never")
    click.echo(f"created key {record.key_id} {record.label} ({record.name or 'unnamed'})")
    click.echo(f"  scopes:  {', '.join(record.scopes)}")
    click.echo(f"  expires: {expiry}")
    click.echo("Copy the key now: it is not stored and cannot be shown again.")
    click.echo(plaintext)


@keys_group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly
def list_command(include_revoked: bool, as_json: bool) -> None:
    """Keys with their scopes and dates (never the keys themselves)."""
    with _key_store() as keys:
        records = keys.list(include_revoked=include_revoked)
    now = datetime.now(UTC)
    if as_json:
        click.echo(json.dumps([_to_json(r, now) for r in records], indent=2))
        return
    console = make_console()
    if not records:
        console.print(
            "no keys yet: `shipyard keys create --scope invoke:SERVICE` makes one"
            + ("" if include_revoked else " (`--all` also lists revoked keys)")
        )
        return
    table = Table(box=None, pad_edge=False)
    columns = ["id", "name", "prefix", "scopes", "created", "expires", "last used"]
    for column in [*columns, "revoked"] if include_revoked else columns:
        table.add_column(column, no_wrap=column not in ("name", "scopes"), overflow="fold")
    for r in records:
        expires = _when(r.expires_at, "never") + (" (expired)" if r.is_expired(now) else "")
        cells = [
            str(r.key_id),
            escape(r.name) or "-",
            r.label,
            escape(", ".join(r.scopes)),
            r.created_at.astimezone().strftime("%Y-%m-%d"),
            expires,
            _when(r.last_used_at, "never"),
        ]
        table.add_row(*cells, *([_when(r.revoked_at)] if include_revoked else []))
    console.print(table)


@keys_group.command("revoke")
@click.argument("key", metavar="ID|PREFIX|KEY")
@_friendly
def revoke_command(key: str) -> None:
    """Revoke a key by its id or its sy_... prefix (as `shipyard keys list` shows them), or
    by the whole key (as `shipyard keys create` printed it).

    \b
    Examples:
      shipyard keys revoke 3
      shipyard keys revoke sy_3f9a0c12ab34
      shipyard keys revoke "$KEY"
    """
    with _key_store() as keys:
        before = keys.get(key)
        record = keys.revoke(key)
        # the last active invoke (or ui) key gone: keyless loopback access opens again
        reopened = [
            prefix
            for prefix in _OPEN_WITHOUT_KEYS
            if before.is_active(datetime.now(UTC))
            and any(scope.startswith(prefix) for scope in record.scopes)
            and not keys.has_keys_with_scope_prefix(prefix)  # revoke() emptied its cache
        ]
    if before.revoked_at is not None:
        click.echo(
            f"key {record.key_id} {record.label} was already revoked at {_when(record.revoked_at)}"
        )
        return
    click.echo(
        f"revoked key {record.key_id} {record.label} ({record.name or 'unnamed'}); a running "
        f"host stops accepting it within {DEFAULT_CACHE_TTL:g} s"
    )
    for prefix in reopened:
        click.secho(f"Warning: {reopened_warning(prefix)}", fg="yellow", err=True)


COMMANDS: list[click.Command] = [keys_group]

__all__ = ["COMMANDS"]
