"""``shipyard stub URL``: a ``.pyi`` stub of the services of a host, for type checkers and
editors (:mod:`shipyard.remote.stubs`)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["COMMANDS", "stub_command"]


@click.command("stub")
@click.argument("url")
@click.option("--key", default=None, help="An invoke key (the host's /openapi.json needs none).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="The .pyi file to write (default: standard output).",
)
def stub_command(url: str, key: str | None, output: Path | None) -> None:
    """Write a .pyi stub of the services at URL (http://127.0.0.1:8000).

    \b
    Use it with shipyard.connect:
      shipyard stub http://127.0.0.1:8000 -o services.pyi
      # then, in Python: if TYPE_CHECKING: from services import Services
      #                  client = cast("Services", shipyard.connect(url, key))
    """
    from shipyard.remote import RemoteError, connect
    from shipyard.remote.stubs import stub

    try:
        with connect(url, key) as connection:
            text = stub(connection)
    except (RemoteError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text)
    names = ", ".join(connection.services) or "no services"
    click.echo(f"wrote {output} ({names})", err=True)


COMMANDS = [stub_command]
