"""``shipyard doctor``: check a setup end to end and say what to fix; ``shipyard db upgrade``:
migrate the metadata database to this shipyard's schema."""

from __future__ import annotations

import json

import click

from shipyard.cli import _doctor
from shipyard.cli._doctor import Result, Status


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds each server (database, Redis) has to answer; the blob store gets three "
    "times as long (a write, a read and a delete).",
)
@click.option(
    "--ray-address",
    envvar="SHIPYARD_RAY_ADDRESS",
    help="The Ray cluster flows run on (default: SHIPYARD_RAY_ADDRESS, ray_address in "
    "config.yaml).",
)
def doctor_command(as_json: bool, timeout: float, ray_address: str | None) -> None:
    """Check this machine's shipyard setup, as every command would read it (flags >
    SHIPYARD_* variables > $SHIPYARD_HOME/config.yaml): the metadata database (reachable,
    migrated, writable, clock skew), the blob store (a blob written, read and deleted), each
    cache region, Ray when configured, and the permissions of SHIPYARD_HOME and its secrets.

    Each check says OK, WARN, FAIL or SKIP and, when something is wrong, what to fix. Exits 1
    if any check failed, else 0.

    \b
    Examples:
      shipyard doctor
      shipyard doctor --json --timeout 2
    """
    results = run_checks(timeout=timeout, ray_address=ray_address)
    if as_json:
        ok = not any(r.status is Status.FAIL for r in results)
        click.echo(json.dumps({"ok": ok, "checks": [r.as_json() for r in results]}, indent=2))
    else:
        _print_table(results)
    if any(r.status is Status.FAIL for r in results):
        raise SystemExit(1)


def run_checks(*, timeout: float, ray_address: str | None) -> list[Result]:
    """Every check, in the order a reader fixes them."""
    from shipyard.config import ConfigError, settings

    results = list(_doctor.permissions(_doctor.raw_home()))  # before settings() tightens them
    try:
        conf = settings()
    except ConfigError as exc:
        return [*results, Result("configuration", Status.FAIL, str(exc), "fix config.yaml")]
    results += _doctor.database(conf.db_url, timeout)
    results.append(_doctor.blob_store(conf.store_url, timeout))
    results += _doctor.cache(conf.cache_url, timeout)
    executor = conf.executor  # flag > SHIPYARD_EXECUTOR > config.yaml > local
    address = ray_address or conf.ray_address
    results.append(_doctor.ray(executor, address))
    return results


def _print_table(results: list[Result]) -> None:
    colours = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.SKIP: None}
    width = max(len(r.check) for r in results)
    for r in results:
        status = click.style(f"{r.status.value:<4}", fg=colours[r.status], bold=True)
        click.echo(f"{status}  {r.check:<{width}}  {r.ms:>7.1f} ms  {r.detail}")
        if r.fix:
            click.echo(f"{'':<4}  {'':<{width}}  {'':>10}  fix: {r.fix}")
    failed = sum(r.status is Status.FAIL for r in results)
    warned = sum(r.status is Status.WARN for r in results)
    click.echo(f"{failed} failed, {warned} warning(s), {len(results)} checks")


@click.group("db")
def db_group() -> None:
    """The metadata database (SHIPYARD_DB_URL)."""


@db_group.command("upgrade")
def upgrade_command() -> None:
    """Migrate the metadata database to this shipyard's schema (every command that opens the
    database does so too; this one does only that, e.g. once per upgrade of a shared
    PostgreSQL).

    \b
    Example:
      SHIPYARD_DB_URL=postgresql+psycopg://shipyard@db/shipyard shipyard db upgrade
    """
    from shipyard.cli._doctor import shown_url
    from shipyard.store.errors import StoreError
    from shipyard.store.meta import MetaStore
    from shipyard.store.schema import HEAD_REVISION

    try:
        store = MetaStore.open()
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        click.echo(f"{shown_url(store.url)}: at revision {HEAD_REVISION}")
    finally:
        store.engine.dispose()


COMMANDS = [doctor_command, db_group]
