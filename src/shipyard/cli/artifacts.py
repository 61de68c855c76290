"""``shipyard artifacts list|get``: a task's artifacts, described from their previews or
loaded."""

from __future__ import annotations

import pickle
from pathlib import Path

import click
from rich.markup import escape

from shipyard.cli._common import (
    PathspecType,
    artifact_table,
    friendly,
    make_console,
    single_task,
    size,
)
from shipyard.store import pathspec as _pathspec
from shipyard.store.files import Files


# --- artifacts ---------------------------------------------------------------------------
@click.group("artifacts")
def artifacts_group() -> None:
    """List a task's artifacts, or fetch one.

    \b
    Examples:
      shipyard artifacts list DigitsFlow/12/train/34
      shipyard artifacts get DigitsFlow/12/end/40:model -o model.pkl
    """


@artifacts_group.command("list")
@click.argument("pathspec", type=PathspecType(min_depth=3))
@friendly
def artifacts_list(pathspec: _pathspec.Pathspec) -> None:
    """Name, type, size and preview of a task's artifacts (nothing is unpickled).

    \b
    Example:
      shipyard artifacts list DigitsFlow/12/train/34
    """
    task = single_task(pathspec)
    console = make_console()
    console.print(f"[bold]{escape(task.pathspec)}[/bold]")
    artifact_table(console, task)


@artifacts_group.command("get")
@click.argument("address", metavar="Flow/run/step/task:name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the value here: bytes and str as they are, anything else pickled.",
)
@friendly
def artifacts_get(address: str, output: Path | None) -> None:
    """Print an artifact's value (its repr), or write it to a file with -o.

    Loading an artifact unpickles it: only do this with a store you trust.

    \b
    Examples:
      shipyard artifacts get DigitsFlow/12/join/39:score
      shipyard artifacts get DigitsFlow/12/end/40:model -o model.pkl
    """
    try:
        spec, name = _pathspec.parse_artifact(address)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'Flow/run/step/task:name'") from None
    value = single_task(spec)[name].data
    if isinstance(value, Files):  # a directory: say where it is rather than pickle it
        click.echo(f"{value!r}: its files are in {value.path}")
        if output is not None:
            raise click.ClickException(
                f"{address} is a file artifact ({value.describe()}), not one value: copy its "
                f"files from {value.path}"
            )
        return
    if output is None:
        click.echo(repr(value))
        return
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = pickle.dumps(value, protocol=5)
    output.write_bytes(data)
    click.echo(f"wrote {size(len(data))} to {output}", err=True)


COMMANDS: list[click.Command] = [artifacts_group]
