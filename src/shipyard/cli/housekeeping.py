"""``shipyard gc`` and ``shipyard tag``: delete old runs and unreferenced blobs; tag runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from shipyard.cli._common import (
    DurationType,
    PathspecType,
    friendly,
    size,
)
from shipyard.client import (
    Run,
)
from shipyard.store import pathspec as _pathspec


# --- gc ----------------------------------------------------------------------------------
@click.command("gc")
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option(
    "--older-than",
    "older_than",
    type=DurationType(),
    help="Delete finished runs created longer ago than this (30d, 12h, 90m).",
)
@click.option(
    "--keep", type=click.IntRange(min=0), help="Keep the newest N runs of each flow, delete older."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only report what would be deleted, and the bytes of blobs it would free.",
)
@click.option(
    "--grace",
    type=DurationType(),
    default="1h",
    show_default=True,
    help="Never delete unreferenced blobs younger than this (a live run may be writing them), "
    "nor temp files written to more recently, unless their writer is gone.",
)
@friendly
def gc_command(
    runs: tuple[str, ...],
    older_than: timedelta | None,
    keep: int | None,
    dry_run: bool,
    grace: timedelta,
) -> None:
    """Delete old runs and the stored blobs nothing references any more, and the temp
    files that writes killed mid-way left in a local blob store.

    Running runs are never touched. With both limits, a run goes only if both let it go.
    Tagged runs, and runs that registered a model version (what a deployment serves comes
    from one), are kept whatever the limits say: name a run (Flow/12) to delete it.

    \b
    Examples:
      shipyard gc --older-than 30d --dry-run
      shipyard gc --keep 10
      shipyard gc DigitsFlow/12 DigitsFlow/13
    """
    from shipyard.client.gc import collect

    if older_than is None and keep is None and not runs:
        raise click.UsageError(
            "say what to delete: --older-than DURATION and/or --keep N, or runs by name, "
            "e.g. `shipyard gc --older-than 30d --dry-run`"
        )
    for name in runs:
        try:
            _pathspec.parse(name, min_depth=2, max_depth=2)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="RUN") from None
    try:
        report = collect(
            older_than=older_than, keep_last=keep, dry_run=dry_run, grace=grace, runs=runs
        )
    except ValueError as exc:  # a named run is still running
        raise click.ClickException(str(exc)) from None
    verb = "would delete" if dry_run else "deleted"
    shown = ", ".join(report.runs[:10]) + (", ..." if len(report.runs) > 10 else "")
    click.echo(f"{verb} {len(report.runs)} run(s)" + (f": {shown}" if shown else ""))
    for pathspec, reasons in list(report.kept.items())[:20]:
        click.echo(f"kept {pathspec}: {'; '.join(reasons)}")
    if len(report.kept) > 20:
        click.echo(f"kept {len(report.kept) - 20} more run(s) with tags or registered models")
    if report.kept:
        click.echo("(name a kept run to delete it: shipyard gc FLOW/RUN_ID)")
    freed = "an unknown size" if report.bytes is None else size(report.bytes)
    if dry_run:
        click.echo(f"would delete {report.blobs} blob(s), freeing {freed}")
    else:
        click.echo(f"deleted {report.blobs} blob(s), {freed}")
    if report.log_dirs:
        click.echo(f"{verb} {report.log_dirs} leftover log dir(s)")
    if report.temp_files:
        click.echo(
            f"{verb} {report.temp_files} temp file(s) of interrupted writes, "
            f"{size(report.temp_bytes)}"
        )
    if report.files_temps:
        click.echo(f"deleted {report.files_temps} unfinished file-artifact dir(s)")
    if report.young_blobs:
        click.echo(f"kept {report.young_blobs} unreferenced blob(s) younger than the grace period")


# --- tag ---------------------------------------------------------------------------------
@click.group("tag")
def tag_group() -> None:
    """List, add or remove runs' tags.

    \b
    Examples:
      shipyard tag list
      shipyard tag list DigitsFlow/12
      shipyard tag add DigitsFlow/12 baseline reviewed
      shipyard tag remove DigitsFlow/12 reviewed
    """


@tag_group.command("list")
@click.argument("spec", required=False, metavar="[FLOW | FLOW/RUN]", type=PathspecType(max_depth=2))
@friendly
def tag_list_command(spec: _pathspec.Pathspec | None) -> None:
    """Every tag with how many runs have it (of every flow, or of FLOW), or one run's tags.

    \b
    Examples:
      shipyard tag list
      shipyard tag list DigitsFlow
      shipyard tag list DigitsFlow/12
    """
    from shipyard.store.context import default_stores

    if spec is not None and spec.run_id is not None:
        run = Run(str(spec))
        click.echo("\n".join(sorted(run.tags)) or f"{run.pathspec} has no tags")
        return
    flow = spec.flow if spec is not None else None
    counts = default_stores().meta.tag_counts(flow)
    if not counts:
        where = f"{flow}'s runs" if flow else "any run"
        click.echo(f"no tags on {where} yet: `shipyard tag add MyFlow/12 baseline` tags a run")
        return
    width = max(len(tag) for tag, _ in counts)
    for tag, runs in counts:
        click.echo(f"{tag:<{width}}  {runs} run{'' if runs == 1 else 's'}")


def _check_tags(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Any:
    from shipyard.client.run import check_tag

    try:
        return tuple(check_tag(t) for t in value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _tag_command(name: str, add: bool) -> click.Command:
    @click.argument("pathspec", type=PathspecType(min_depth=2, max_depth=2))
    @click.argument("tags", nargs=-1, required=True, callback=_check_tags)
    @friendly
    def command(pathspec: _pathspec.Pathspec, tags: tuple[str, ...]) -> None:
        run = Run(str(pathspec))
        if add:
            run.add_tags(tags)
        else:
            run.remove_tags(tags)
        click.echo(f"{run.pathspec} tags: {', '.join(sorted(run.tags)) or '-'}")

    verb = "Add" if add else "Remove"
    command.__doc__ = (
        f"{verb} tags {'to' if add else 'from'} a run.\n\n\b\nExample:\n"
        f"  shipyard tag {name} DigitsFlow/12 baseline"
    )
    return click.command(name)(command)


tag_group.add_command(_tag_command("add", add=True))
tag_group.add_command(_tag_command("remove", add=False))


COMMANDS: list[click.Command] = [gc_command, tag_group]
