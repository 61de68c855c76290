"""``shipyard schedule ...``, ``shipyard backfill`` and ``shipyard scheduler``.

They work on the metadata database directly (``SHIPYARD_DB_URL`` or the SQLite default), as
``shipyard keys`` does; creating or changing a schedule (create, pause, resume, delete,
trigger, backfill) needs an admin key: ``--key`` / ``SHIPYARD_KEY``, else the local admin
token ``$SHIPYARD_HOME/admin.token`` (see :func:`shipyard.schedules.manage.require_admin`).

Errors: a bad flag, cron or parameter exits 2; an unknown schedule, a refused key or a store
problem exits 1.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from shipyard.cli._common import exits, make_console
from shipyard.flow.exceptions import FlowError
from shipyard.schedules.errors import ScheduleDefinitionError, ScheduleError
from shipyard.schedules.policies import CATCHUP, EXECUTORS, OVERLAP
from shipyard.schedules.records import FireRecord, ScheduleRecord
from shipyard.schedules.store import ScheduleStore

_friendly = exits(usage=(ScheduleDefinitionError,), runtime=(ScheduleError, FlowError))
_KEY = click.option(
    "--key",
    envvar="SHIPYARD_KEY",
    default=None,
    help="An admin key (default: $SHIPYARD_KEY, else $SHIPYARD_HOME/admin.token).",
)


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _store() -> Iterator[ScheduleStore]:
    from shipyard.store.meta import MetaStore

    with MetaStore.open() as meta:
        yield ScheduleStore(meta)


def _admin(store: ScheduleStore, key: str | None) -> str:
    from shipyard.config import settings
    from shipyard.schedules.manage import require_admin

    return require_admin(store.meta, key, settings().home)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _iso(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date or time, e.g. 2026-03-01 or 2026-03-01T06:00+01:00",
            param_hint=option,
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@click.group("schedule")
def schedule_group() -> None:
    """Flows that run themselves: on a cron timetable, on events (`shipyard event publish`),
    after other flows (@trigger_on_finish).

    \b
    Examples:
      shipyard schedule create flow.py            # @schedule(...) on the flow class
      shipyard schedule create flow.py --cron '0 */4 * * *' --timezone Europe/Amsterdam
      shipyard schedule list
      shipyard schedule next RankerFlow -n 5
      shipyard schedule pause RankerFlow --note 'ratings feed broken, INC-12'
      shipyard schedule trigger RankerFlow --param factors=8,16
    """


@schedule_group.command("create")
@click.argument("flow_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None, help="The schedule's name (default: the flow's name).")
@click.option("--flow", "flow_name", default=None, help="The flow class, if the file has several.")
@click.option("--cron", default=None, help="A cron expression (overrides @schedule).")
@click.option("--timezone", default=None, help="An IANA time zone (default: UTC).")
@click.option("--catchup", type=click.Choice(CATCHUP), default=None, help="Missed fire times.")
@click.option("--catchup-window", default=None, help="e.g. 6h (default 24h).")
@click.option("--catchup-max", type=int, default=None, help="With --catchup all (default 100).")
@click.option("--overlap", type=click.Choice(OVERLAP), default=None, help="A run still going.")
@click.option("--jitter", default=None, help="Start up to this long after the fire time.")
@click.option("--pause-on-failure", type=int, default=None, help="Pause after N failed runs.")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None, help="local or ray.")
@_KEY
@_friendly
def create_command(
    flow_file: str,
    name: str | None,
    flow_name: str | None,
    cron: str | None,
    timezone: str | None,
    key: str | None,
    **policies: Any,
) -> None:
    """Register FLOW_FILE's flow (a snapshot of its code, its parameters' defaults, its
    @schedule) as a new version of a schedule; re-running it updates the schedule."""
    from shipyard.config import settings
    from shipyard.schedules.manage import create, next_times
    from shipyard.store.blobs import open_blob_store

    with _store() as store:
        user = _admin(store, key)
        name, version, new = create(
            store,
            flow_file,
            name=name,
            user=user,
            now=_now(),
            blobs=open_blob_store(settings().store_url),
            flow_name=flow_name,
            cron=cron,
            timezone=timezone,
            overrides={k: v for k, v in policies.items() if v is not None},
        )
        record = store.get(name)
        upcoming = next_times(record, 1, _now())
    what = f"cron {new.cron!r} ({new.timezone})" if new.cron else "no cron"
    click.echo(f"schedule {name!r} version {version}: {new.flow_name}, {what}")
    if new.triggers:
        click.echo(f"  triggers: {triggers_text(new.triggers)}")
    if upcoming:
        click.echo(f"  next fire time: {_when(upcoming[0])}")
    if record.paused:
        click.echo(f"  paused: {record.note}")


@schedule_group.command("list")
@_friendly
def list_command() -> None:
    """Schedules, their next fire time and state."""
    from shipyard.schedules.manage import next_times

    now = _now()
    with _store() as store:
        records = store.list()
    console = make_console()
    if not records:
        console.print("no schedules yet: `shipyard schedule create flow.py` makes one")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("name", "flow", "version", "cron", "timezone", "next", "state"):
        table.add_column(column)
    for r in records:
        upcoming = next_times(r, 1, now)
        state = f"paused: {r.note}" if r.paused else "active"
        table.add_row(
            escape(r.name),
            r.flow_name,
            str(r.version),
            escape(r.current.cron or "-"),
            r.current.timezone,
            "-" if r.paused or not upcoming else _when(upcoming[0]),
            escape(state),
        )
    console.print(table)


def _fire_row(fire: FireRecord, flow_name: str) -> list[str]:
    run = f"{flow_name}/{fire.run_id}" if fire.run_id else "-"
    status = fire.status.value
    if fire.exit_code is not None:
        status += f", exit {fire.exit_code}"
    return [
        str(fire.id),
        fire.kind.value,
        _when(fire.scheduled_for) if fire.scheduled_for else _cause(fire),
        fire.status.value
        if fire.exit_code is None
        else f"{fire.status.value}, exit {fire.exit_code}",
        run,
        escape(fire.reason or ""),
    ]


def _cause(fire: FireRecord) -> str:
    """What an event or upstream fire answered: ``ratings-updated #7``, ``RatingsFlow/12``."""
    if "upstream_run" in fire.trigger:
        return escape(str(fire.trigger["upstream_run"]))
    if "event" in fire.trigger:
        return escape(f"{fire.trigger['event']} #{fire.trigger.get('event_id', '?')}")
    return "-"


def triggers_text(triggers: list[dict[str, Any]]) -> str:
    """A version's triggers in words: ``event ratings-updated (day <- date), after
    RatingsFlow (success)``."""
    parts = []
    for spec in triggers:
        if spec.get("type") == "event":
            mapping = ", ".join(f"{k} <- {v}" for k, v in (spec.get("parameters") or {}).items())
            parts.append(f"event {spec.get('name')}" + (f" ({mapping})" if mapping else ""))
        elif spec.get("type") == "flow":
            parts.append(f"after {spec.get('flow')} ({spec.get('on', 'success')})")
    return ", ".join(parts)


def _history_table(fires: list[FireRecord], record: ScheduleRecord) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("fire", "kind", "scheduled for / cause", "status", "run", "reason"):
        table.add_column(column)
    for fire in fires:
        table.add_row(*_fire_row(fire, record.flow_name))
    return table


@schedule_group.command("show")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, help="History rows.")
@_friendly
def show_command(name: str, limit: int) -> None:
    """A schedule: its versions, next fire times and history (skips with their reasons)."""
    from shipyard.schedules.manage import next_times

    with _store() as store:
        record = store.get(name)
        versions = store.versions(name)
        fires = store.fires(name, limit=limit)
    console = make_console()
    console.print(f"[bold]{escape(record.name)}[/bold]  flow {record.flow_name}")
    if record.paused:
        console.print(
            f"  [yellow]paused[/yellow] by {record.paused_by} at {_when(record.paused_at)}: "
            f"{escape(record.note or '')}"
        )
    if record.current.triggers:
        console.print(f"  triggers: {escape(triggers_text(record.current.triggers))}")
    p = record.current.policies
    console.print(
        f"  catchup={p.catchup} (window {p.catchup_window}s, max {p.catchup_max})  "
        f"overlap={p.overlap}  jitter={p.jitter}s  pause_on_failure={p.pause_on_failure}  "
        f"executor={p.executor}"
    )
    console.print("versions:")
    for v in versions:
        mark = "*" if v.version == record.version else " "
        console.print(
            f" {mark} {v.version}  {_when(v.created_at)}  by {escape(v.created_by)}  "
            f"cron {escape(v.cron or '-')} ({v.timezone})  code {v.code_key[:12]}  "
            f"parameters {escape(str(v.parameters))}"
        )
    upcoming = [] if record.paused else next_times(record, 3, _now())
    console.print("next: " + (", ".join(_when(t) for t in upcoming) or "-"))
    console.print("history:")
    if fires:
        console.print(_history_table(fires, record))
    else:
        console.print("  none yet")


@schedule_group.command("next")
@click.argument("name")
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 1000))
@_friendly
def next_command(name: str, count: int) -> None:
    """The next fire times of a schedule (UTC, and local in its time zone)."""
    from shipyard.schedules.cron import zone
    from shipyard.schedules.manage import next_times

    with _store() as store:
        record = store.get(name)
    tz = zone(record.current.timezone)
    for when in next_times(record, count, _now()):
        local = when.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
        click.echo(f"{_when(when)}  ({local})")


@schedule_group.command("pause")
@click.argument("name")
@click.option("--note", required=True, help="Why (shown in list and show).")
@_KEY
@_friendly
def pause_command(name: str, note: str, key: str | None) -> None:
    """Pause a schedule: nothing runs while it is paused, and each of its fire times (and
    events, finished upstream runs) is still recorded, once, as skipped with the reason
    'paused: NOTE' (schedule show); schedule trigger still runs it."""
    with _store() as store:
        user = _admin(store, key)
        store.pause(name, note, user=user, now=_now())
    click.echo(f"paused {name!r}: {note}")


@schedule_group.command("resume")
@click.argument("name")
@_KEY
@_friendly
def resume_command(name: str, key: str | None) -> None:
    """Resume a paused schedule (from now: fire times while paused do not run)."""
    with _store() as store:
        _admin(store, key)
        store.resume(name, now=_now())
    click.echo(f"resumed {name!r}")


@schedule_group.command("delete")
@click.argument("name")
@_KEY
@_friendly
def delete_command(name: str, key: str | None) -> None:
    """Delete a schedule (its history stays; `create` brings it back)."""
    with _store() as store:
        _admin(store, key)
        store.delete(name, now=_now())
    click.echo(f"deleted {name!r}")


@schedule_group.command("trigger")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Repeatable.")
@_KEY
@_friendly
def trigger_command(name: str, params: tuple[str, ...], key: str | None) -> None:
    """Run a schedule's flow now (type manual), by the scheduler's next tick."""
    from shipyard.schedules.manage import parse_params, trigger_now

    with _store() as store:
        user = _admin(store, key)
        fire_id = trigger_now(store, name, parse_params(params), user=user, now=_now())
        leased = store.lease()
    click.echo(f"fire {fire_id} of {name!r}: the scheduler starts it on its next tick")
    if leased is None or leased[1] < _now():
        click.echo(
            "note: no scheduler is running on this database; start `shipyard serve` or "
            "`shipyard scheduler`",
            err=True,
        )


@click.command("backfill")
@click.argument("name")
@click.option("--start", "start_text", required=True, help="ISO date or time (inclusive).")
@click.option("--end", "end_text", required=True, help="ISO date or time (inclusive).")
@click.option("--max-parallel", default=2, show_default=True, type=int)
@click.option("--dry-run", is_flag=True, help="Print the fire times; create nothing.")
@_KEY
@_friendly
def backfill_command(
    name: str, start_text: str, end_text: str, max_parallel: int, dry_run: bool, key: str | None
) -> None:
    """One run per fire time of schedule NAME in [--start, --end]; twice creates nothing new."""
    from shipyard.schedules.manage import backfill

    start, end = _iso(start_text, "--start"), _iso(end_text, "--end")
    with _store() as store:
        if not dry_run:
            _admin(store, key)
        new, existing = backfill(
            store, name, start, end, max_parallel=max_parallel, dry_run=dry_run, now=_now()
        )
    verb = "would create" if dry_run else "created"
    click.echo(f"{verb} {len(new)} backfill run(s) of {name!r}; {len(existing)} already exist")
    for when in new:
        click.echo(f"  {_when(when)}")


def scheduled_runs_cap(flag: int | None, hint: str) -> int:
    """The global cap on scheduled runs going at once: the flag, else
    ``SHIPYARD_MAX_SCHEDULED_RUNS``, else ``max_scheduled_runs`` in config.yaml, else 16."""
    from shipyard.config import ConfigError, settings

    try:
        return settings(max_scheduled_runs=flag).max_scheduled_runs
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


@click.command("scheduler")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between ticks.")
@click.option(
    "--max-running",
    default=None,
    type=click.IntRange(min=1),
    help="Scheduled runs going at once; the rest queue (default: SHIPYARD_MAX_SCHEDULED_RUNS, "
    "max_scheduled_runs in config.yaml, else 16).",
)
@_friendly
def scheduler_command(interval: float, max_running: int | None) -> None:
    """Run the scheduler alone (``shipyard serve`` runs one too); stop with Ctrl-C."""
    import signal

    from shipyard.schedules.scheduler import Scheduler
    from shipyard.store.meta import MetaStore

    cap = scheduled_runs_cap(max_running, "--max-running")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with MetaStore.open() as meta:
        sched = Scheduler(ScheduleStore(meta), max_running=cap, announce=click.echo)
        click.echo(f"scheduler {sched.holder} on {meta.url}; Ctrl-C stops it")
        sched.serve(stop, interval=interval)


@click.group("event")
def event_group() -> None:
    """Events: what @trigger(event=...) schedules wait for.

    \b
    Examples:
      shipyard event publish ratings-updated --payload '{"date": "2026-03-01"}'
      shipyard event list
    """


@event_group.command("publish")
@click.argument("name")
@click.option("--payload", default=None, help='A JSON object, e.g. \'{"date": "2026-03-01"}\'.')
@click.option("--id", "idempotency_key", default=None, help="An idempotency id: twice is once.")
@click.option(
    "--key",
    envvar="SHIPYARD_KEY",
    default=None,
    help="A key with scope events:publish or admin (default: $SHIPYARD_KEY, else "
    "$SHIPYARD_HOME/admin.token).",
)
@_friendly
def publish_command(
    name: str, payload: str | None, idempotency_key: str | None, key: str | None
) -> None:
    """Publish event NAME: every schedule whose @trigger names it fires (on the scheduler's
    next tick)."""
    import json

    from shipyard.config import settings
    from shipyard.schedules.manage import require_publisher
    from shipyard.store.events import EventError, check_event, publish_event

    body: Any = {}
    if payload is not None:
        try:
            body = json.loads(payload)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--payload") from None
    try:
        check_event(name, body, idempotency_key)
    except EventError as exc:
        raise click.UsageError(str(exc)) from None
    with _store() as store:
        user = require_publisher(store.meta, key, settings().home)
        event, new = publish_event(
            store.meta, name, body, source="cli", user=user, idempotency_key=idempotency_key
        )
        waiting = [
            r.name
            for r in store.list()
            if any(t.get("type") == "event" and t.get("name") == name for t in r.current.triggers)
        ]
        leased = store.lease()
    if not new:
        click.echo(f"event {event.id} ({event.name}) was published before with this --id")
        return
    click.echo(f"published event {event.id}: {event.name}")
    if waiting:
        click.echo(f"  schedules waiting for it: {', '.join(waiting)}")
    else:
        click.echo("  no schedule waits for it (kept: schedules created later do not fire)")
    if waiting and (leased is None or leased[1] < _now()):
        click.echo(
            "note: no scheduler is running on this database; start `shipyard serve` or "
            "`shipyard scheduler`",
            err=True,
        )


@event_group.command("list")
@click.option("--name", default=None, help="Only events of this name.")
@click.option("-n", "limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@_friendly
def event_list_command(name: str | None, limit: int) -> None:
    """The newest events, and what each one fired."""
    import json

    from shipyard.store.events import recent_events

    with _store() as store:
        found = recent_events(store.meta, name=name, limit=limit)
        fired = store.fires_for_events([f"event:{e.id}" for e in found])
    console = make_console()
    if not found:
        console.print("no events yet: `shipyard event publish NAME` publishes one")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "name", "source", "by", "published", "payload", "fired"):
        table.add_column(column)
    for e in found:
        fires = fired.get(f"event:{e.id}", [])
        what = ", ".join(
            f"{f.schedule} ({f.status.value}{': ' + f.reason if f.reason else ''})" for f in fires
        )
        table.add_row(
            str(e.id),
            escape(e.name),
            e.source,
            escape(e.published_by),
            _when(e.published_at),
            escape(json.dumps(e.payload)[:80]),
            escape(what or "-"),
        )
    console.print(table)


COMMANDS = [schedule_group, backfill_command, scheduler_command, event_group]
