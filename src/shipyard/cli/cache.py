"""``shipyard cache``: look at and manage the precompute cache's namespaces.

``ls`` flags a namespace STALE when its live version is older than its ``max_age``
(``cache configure NS --max-age 6h``). Errors: a bad namespace name or setting exits 2
(usage); a missing namespace, version or key, or an unreachable backend, exits 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from shipyard.cache import admin, codec, migration, signing
from shipyard.cache.backends import Backend, CacheError, VersionInfo, open_backend
from shipyard.cache.namespaces import (
    InvalidName,
    check_namespace,
    encode_key,
    live_info,
    parse_max_age,
)
from shipyard.cli._common import DurationType, duration, exits, make_console

_friendly = exits(usage=(InvalidName,), runtime=(CacheError,))


@contextmanager
def _backend(ctx: click.Context) -> Iterator[Backend]:
    backend = open_backend(ctx.obj)
    try:
        yield backend
    finally:
        backend.close()


def _when(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else "-"


def _age(info: VersionInfo | None) -> float | None:
    if info is None:
        return None
    return time.time() - (info.published_at or info.created_at)


def _info_json(info: VersionInfo, live: str | None) -> dict[str, Any]:
    return {
        "version": info.version,
        "live": info.version == live,
        "created_at": info.created_at,
        "published_at": info.published_at,
        "keys": info.keys,
        "meta": info.meta,
    }


@click.group("cache")
@click.option(
    "--url",
    envvar="SHIPYARD_CACHE_URL",
    default=None,
    metavar="URL",
    help="The cache (lmdb:///path, redis://host:port/db, or a comma-separated list of "
    "replicas); default: SHIPYARD_CACHE_URL, else lmdb://$SHIPYARD_HOME/cache.",
)
@click.pass_context
def cache_group(ctx: click.Context, url: str | None) -> None:
    """The precompute cache: versioned key -> value namespaces.

    \b
    Examples:
      shipyard cache ls
      shipyard cache show home-rows
      shipyard cache get home-rows p1
      shipyard cache rollback home-rows
      shipyard cache configure home-rows --keep 5 --max-age 6h
      shipyard cache gc --dry-run
      shipyard cache public-key
      shipyard cache migrate-signatures
    """
    ctx.obj = url


@cache_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@_friendly
def ls_command(ctx: click.Context, as_json: bool) -> None:
    """Namespaces: live version, its age and keys, versions kept, STALE if too old."""
    with _backend(ctx) as backend:
        rows = admin.statuses(backend=backend)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "namespace": s.namespace,
                        "live": s.live.version if s.live else None,
                        "age_seconds": s.age,
                        "keys": s.live.keys if s.live else None,
                        "versions": len(s.versions),
                        "keep": s.settings.keep,
                        "max_age_seconds": s.settings.max_age,
                        "stale": s.stale,
                    }
                    for s in rows
                ],
                indent=2,
            )
        )
        return
    console = make_console()
    if not rows:
        console.print(f"no cache namespaces in {escape(backend.url)} yet")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("namespace", "live", "age", "keys", "versions", "keep", "max age", "status"):
        table.add_column(column, no_wrap=True)
    for s in rows:
        status = "[bold red]STALE[/]" if s.stale else ("ok" if s.live else "[dim]no live[/]")
        table.add_row(
            escape(s.namespace),
            s.live.version if s.live else "-",
            duration(s.age),
            f"{s.live.keys:,}" if s.live else "-",
            str(len(s.versions)),
            str(s.settings.keep),
            duration(s.settings.max_age) if s.settings.max_age else "-",
            status,
        )
    console.print(table)


@cache_group.command("show")
@click.argument("namespace")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@_friendly
def show_command(ctx: click.Context, namespace: str, as_json: bool) -> None:
    """The versions of NAMESPACE: published time, keys, meta."""
    check_namespace(namespace)
    with _backend(ctx) as backend:
        status = admin.status(namespace, backend=backend)
    if not status.versions:
        raise CacheError(f"cache namespace {namespace!r} has no versions in {backend.url}")
    live = status.live.version if status.live else None
    if as_json:
        click.echo(json.dumps([_info_json(v, live) for v in status.versions], indent=2))
        return
    console = make_console()
    settings = status.settings
    max_age = duration(settings.max_age) if settings.max_age else "none"
    console.print(
        f"{escape(namespace)}: keep {settings.keep} versions, max age {max_age}"
        + (" — [bold red]STALE[/]" if status.stale else "")
    )
    table = Table(box=None, pad_edge=False)
    for column in ("version", "", "created", "published", "keys", "meta"):
        table.add_column(column, no_wrap=column != "meta", overflow="fold")
    for v in reversed(status.versions):
        table.add_row(
            v.version,
            "[green]live[/]" if v.version == live else "",
            _when(v.created_at),
            _when(v.published_at) if v.published_at else "[dim]unpublished[/]",
            f"{v.keys:,}",
            escape(json.dumps(v.meta, default=str)) if v.meta else "",
        )
    console.print(table)


@cache_group.command("get")
@click.argument("namespace")
@click.argument("key")
@click.option("--version", default=None, help="Read this version instead of the live one.")
@click.pass_context
@_friendly
def get_command(ctx: click.Context, namespace: str, key: str, version: str | None) -> None:
    """Print the value of KEY in NAMESPACE as JSON (a pickled object: its repr)."""
    check_namespace(namespace)
    raw_key = encode_key(namespace, key)
    with _backend(ctx) as backend:
        if version is None:
            live, _ = live_info(backend, namespace)
            if live is None:
                raise CacheError(f"cache namespace {namespace!r} has no live version")
            version = live.version
        (raw,) = backend.get_many(namespace, version, [raw_key])
    if raw is None:
        raise CacheError(f"key {key!r} is not in version {version} of {namespace!r}")
    value = codec.decode(raw, where=f"namespace {namespace!r}, version {version}, key {key!r}")
    if raw[:1] == codec.PICKLE:
        click.echo(repr(value))
    else:
        click.echo(json.dumps(value, indent=2, default=repr, ensure_ascii=False))


@cache_group.command("rollback")
@click.argument("namespace")
@click.pass_context
@_friendly
def rollback_command(ctx: click.Context, namespace: str) -> None:
    """Make the published version before the live one live again."""
    with _backend(ctx) as backend:
        before = backend.live(check_namespace(namespace))
    target = admin.rollback(namespace, url=ctx.obj)
    click.echo(f"{namespace}: live version is now {target.version} (was {before})")


@cache_group.command("gc")
@click.option("--dry-run", is_flag=True, help="Only list what would be dropped.")
@click.option(
    "--unpublished-after",
    type=DurationType(),
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Drop versions never published that were begun longer ago than this.",
)
@click.pass_context
@_friendly
def gc_command(ctx: click.Context, dry_run: bool, unpublished_after: timedelta) -> None:
    """Drop unpublished versions older than an hour and versions beyond each namespace's keep."""
    with _backend(ctx) as backend:
        dropped = admin.gc(
            backend=backend,
            dry_run=dry_run,
            unpublished_after=unpublished_after.total_seconds(),
        )
    verb = "would drop" if dry_run else "dropped"
    for namespace, info in dropped:
        state = "published" if info.published_at else "unpublished"
        click.echo(f"{verb} {namespace} version {info.version} ({state}, {info.keys:,} keys)")
    click.echo(f"{verb} {len(dropped)} version{'s' if len(dropped) != 1 else ''}")


@cache_group.command("configure")
@click.argument("namespace")
@click.option("--keep", type=click.IntRange(min=1), default=None, help="Versions to keep.")
@click.option(
    "--max-age",
    default=None,
    metavar="DURATION",
    help="Flag the live version STALE past this age, e.g. 6h, 1h30m; 'off' to remove.",
)
@click.pass_context
@_friendly
def configure_command(
    ctx: click.Context, namespace: str, keep: int | None, max_age: str | None
) -> None:
    """Set how many versions NAMESPACE keeps and its freshness limit."""
    if max_age is not None:
        parse_max_age(max_age)
    settings = admin.configure(namespace, keep=keep, max_age=max_age, url=ctx.obj)
    limit = duration(settings.max_age) if settings.max_age else "none"
    click.echo(f"{namespace}: keep {settings.keep} versions, max age {limit}")


@cache_group.command("public-key")
@_friendly
def public_key_command() -> None:
    """Print the public key readers verify pickles with, for SHIPYARD_CACHE_VERIFY_KEY on
    machines that only read (makes the key pair on first use, as a writer would)."""
    key = signing.signer().key.public_key()
    click.echo(signing.public_text(key))


@cache_group.command("keygen")
def keygen_command() -> None:
    """Print a new key pair for the environment and write nothing: the first line for
    SHIPYARD_CACHE_SIGNING_KEY (writers only: keep it secret), the second for
    SHIPYARD_CACHE_VERIFY_KEY (readers)."""
    private, public = signing.generate()
    click.echo(f"{signing.SIGNING_ENV}={private}")
    click.echo(f"{signing.VERIFY_ENV}={public}")


@cache_group.command("migrate-signatures")
@click.option(
    "--hmac-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The old HMAC key: the old cache.key, or a file holding the old "
    "SHIPYARD_CACHE_SIGNING_KEY string. Default: SHIPYARD_CACHE_HMAC_KEY, else "
    "$SHIPYARD_HOME/cache.key if it still is the old key (moved to cache.hmac.key), else "
    "$SHIPYARD_HOME/cache.hmac.key.",
)
@click.option("--namespace", "namespaces", multiple=True, help="Only this namespace (repeatable).")
@click.option(
    "--keep-hmac-key",
    is_flag=True,
    help="Keep $SHIPYARD_HOME/cache.hmac.key after a complete run (another cache URL still "
    "needs it); by default it is deleted then.",
)
@click.pass_context
@_friendly
def migrate_signatures_command(
    ctx: click.Context,
    hmac_key_file: Path | None,
    namespaces: tuple[str, ...],
    keep_hmac_key: bool,
) -> None:
    """Re-sign pickles signed with the old shared HMAC key with the Ed25519 private key.

    Run once after upgrading, where the writers' private key is (it is made if missing).
    Every version of every namespace, in every region, is checked: each old signature is
    verified with the old key first, so a tampered value is reported, never re-signed.
    Idempotent; if interrupted, run it again. Exits 1 if a version still holds values that
    readers refuse (listed). A complete run deletes $SHIPYARD_HOME/cache.hmac.key: whoever
    held the old key (every reader did) could otherwise get a value forged with it re-signed
    by a later run.
    """
    for namespace in namespaces:
        check_namespace(namespace)
    old = signing.hmac_key(hmac_key_file)
    signer = signing.signer()
    click.echo(f"signing with {signer.source} (key {signer.key_id.hex()})")
    click.echo(f"old HMAC key: {old[1] if old else 'none found'}")
    with _backend(ctx) as backend:
        several = len(migration.regions(backend)) > 1
        results = migration.migrate(
            backend,
            old[0] if old else None,
            namespaces=namespaces,
            progress=lambda result: _print_result(result, region=several),
        )
    left = [r for r in results if not r.complete]
    resigned = sum(r.resigned for r in results)
    click.echo(
        f"re-signed {resigned:,} value{'s' if resigned != 1 else ''} in "
        f"{len(results) - len(left)} of {len(results)} version{'s' if len(results) != 1 else ''}"
    )
    if left:
        many = len(left) != 1
        raise CacheError(
            f"{len(left)} version{'s' if many else ''} still hold{'' if many else 's'} values "
            "that readers refuse (listed above with why); fix what is named and run "
            "`shipyard cache migrate-signatures` again, or drop those versions"
        )
    if old is None:
        return
    retired = signing.retired_hmac_key()
    if old[1] == str(retired) and not namespaces and not keep_hmac_key:
        retired.unlink(missing_ok=True)
        click.echo(f"every value is re-signed: deleted the old HMAC key {retired}")
    else:
        click.echo(
            f"every value is re-signed: remove the old HMAC key ({old[1]}) once every cache "
            "that used it is migrated (whoever held it could get a forged value re-signed by "
            "a later run)"
        )


def _print_result(result: migration.VersionResult, *, region: bool) -> None:
    where = f"[{result.region}] " if region else ""
    name = f"{where}{result.namespace} {result.version}"
    if result.dropped:
        click.echo(f"{name}: dropped meanwhile")
        return
    if result.error is not None:
        click.echo(f"{name}: NOT MIGRATED: {result.error}")
        return
    counts = (
        f"re-signed {result.resigned:,}, already signed {result.current:,}, plain {result.plain:,}"
    )
    if result.complete:
        click.echo(f"{name}: {counts}")
        return
    click.echo(f"{name}: {counts}; {result.unresolved:,} LEFT AS THEY WERE (readers refuse them):")
    for key, why in result.reasons.items():
        click.echo(f"    key {key!r}: {why}")
    if result.unresolved > len(result.reasons):
        click.echo(f"    ... and {result.unresolved - len(result.reasons):,} more")


COMMANDS: list[click.Command] = [cache_group]

__all__ = ["COMMANDS"]
