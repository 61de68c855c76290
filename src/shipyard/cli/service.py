"""``shipyard service ...``: one hosted service's own matters. ``service logs NAME`` shows
what its replicas wrote (``shipyard logs`` stays the flows' command, taking pathspecs).

Like ``deploy`` and ``deployments``, it asks the host's admin API at ``--url`` /
``SHIPYARD_URL`` with the admin key from ``--key`` / ``SHIPYARD_KEY`` or, on the host's own
machine, ``$SHIPYARD_HOME/admin.token``: the logs live beside the host that ran the replicas.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode

import click

from shipyard.cli.serve import _call, _key_option, _url_option

#: seconds between two looks for new lines under ``--follow``
FOLLOW_INTERVAL = 0.5


@click.group("service")
def service_group() -> None:
    """A hosted service's own matters: its logs."""


def _path(name: str, **query: Any) -> str:
    params = {k: str(v) for k, v in query.items() if v is not None}
    return f"/services/{quote(name, safe='')}/logs" + (f"?{urlencode(params)}" if params else "")


@contextmanager
def _ctrl_c_raises() -> Iterator[None]:
    """Make Ctrl-C (SIGINT) raise :class:`KeyboardInterrupt` here, whatever this process
    inherited.

    A shell without job control starts a background command (``cmd &``) with SIGINT ignored,
    and so does anything launched from such a command; a Python that starts with SIGINT
    ignored keeps it ignored and never raises KeyboardInterrupt. ``logs -f`` only ends on
    Ctrl-C, so it would never end. Signal handlers can only be set from the main thread; in
    another (a ``CliRunner`` in a thread) the disposition is left as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is not None:  # None: set outside Python, nothing to put back
            signal.signal(signal.SIGINT, previous)


def _show(lines: list[dict[str, Any]], as_json: bool) -> None:
    from shipyard.serve.logs import LogLine, render

    for data in lines:
        if as_json:
            click.echo(json.dumps(data, sort_keys=True))
        else:
            click.echo(render(LogLine.from_json(data)))


@service_group.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--error-id", default=None, metavar="ID", help="Only the failure with this error id.")
@click.option(
    "--version", "version", default=None, type=click.IntRange(1), help="Only this version."
)
@click.option(
    "--since", default=None, metavar="DURATION", help="Only lines of the last 10m, 2h, 1d..."
)
@click.option(
    "--tail",
    default=None,
    type=click.IntRange(0, 10_000),
    help="The last N lines [default: 200; with --error-id: all].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_url_option
@_key_option
def logs_command(
    name: str,
    follow: bool,
    error_id: str | None,
    version: int | None,
    since: str | None,
    tail: int | None,
    as_json: bool,
    url: str,
    key: str | None,
) -> None:
    """Show a service's logs: every replica's lines merged in time order, the worker's
    events made readable (time, version and replica, event, message; tracebacks indented).

    A 500 from a service names an error id: `--error-id ID` shows that failure with its
    traceback.

    \b
    Examples:
      shipyard service logs ranker
      shipyard service logs ranker --error-id 3f2a9c1b7e6d
      shipyard service logs ranker --since 10m --follow
    """
    if since is not None:
        from shipyard.durations import parse_duration

        try:
            parse_duration(since, what="--since")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    filters: dict[str, Any] = {"error_id": error_id, "version": version, "since": since}
    if not follow:
        _first_page(name, filters, tail, as_json, url, key)
        return
    with _ctrl_c_raises():
        try:  # Ctrl-C, wherever it lands (a request, a sleep, printing), ends following
            cursor = _first_page(name, filters, tail, as_json, url, key)
            while True:
                time.sleep(FOLLOW_INTERVAL)
                page = _call("GET", url, _path(name, **filters, after=cursor), key)
                _show(page["lines"], as_json)
                cursor = page["cursor"]
        except KeyboardInterrupt:
            return


def _first_page(
    name: str, filters: dict[str, Any], tail: int | None, as_json: bool, url: str, key: str | None
) -> str:
    """Print the lines asked for; the cursor to follow from."""
    page = _call("GET", url, _path(name, **filters, tail=tail), key)
    if filters["error_id"] is not None and not page["lines"]:
        raise click.ClickException(
            f"no error id {filters['error_id']!r} in the logs of service {name!r} "
            f"(looked in {page['files']} file(s) under {page['directory']}); "
            "an error id is in the logs of the host that answered the 500"
        )
    _show(page["lines"], as_json)
    return str(page["cursor"])


COMMANDS: list[click.Command] = [service_group]

__all__ = ["COMMANDS"]
