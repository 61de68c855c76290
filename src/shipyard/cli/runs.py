"""Read-side flow commands: ``runs``, ``show``, ``logs``, ``artifacts``, ``gc``, ``tag``.

They only read through :mod:`shipyard.client` (``tag`` and ``gc`` write, through it too).
Errors: a missing run/task/artifact or a store problem exits 1; a malformed pathspec, duration
or option exits 2, each with a hint.
"""

from __future__ import annotations

import functools
import pickle
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shipyard.client import (
    ClientError,
    Flow,
    Run,
    RunStatus,
    Step,
    Task,
    TaskStatus,
    list_runs,
)
from shipyard.client import pathspec as _pathspec
from shipyard.client._stores import now, utc
from shipyard.client.dag import nesting
from shipyard.store.records import RunRecord

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:  # click 8.5 made ParamType generic; older versions are not subscriptable
    _PathspecParam = click.ParamType[_pathspec.Pathspec, Any]
    _DurationParam = click.ParamType[timedelta, Any]
else:
    _PathspecParam = _DurationParam = click.ParamType

_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "killed": "magenta",
    "dead": "bold red",
    "running": "yellow",
    "pending": "dim",
}
_LOG_TAIL = 20


# --- parameter types and error handling --------------------------------------------------
class PathspecType(_PathspecParam):
    """A pathspec of ``min_depth`` to ``max_depth`` parts (1 = Flow ... 4 = task)."""

    name = "pathspec"

    def __init__(self, min_depth: int = 1, max_depth: int = 4) -> None:
        self.min_depth, self.max_depth = min_depth, max_depth

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> _pathspec.Pathspec:
        if isinstance(value, _pathspec.Pathspec):
            return value
        try:
            return _pathspec.parse(value, min_depth=self.min_depth, max_depth=self.max_depth)
        except ValueError as exc:
            self.fail(f"{exc} (`shipyard runs` lists runs)", param, ctx)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``1h30m``, ``45s``, ``2w`` -> timedelta (ValueError if not)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"bad duration {text!r}: use a number and a unit s/m/h/d/w, e.g. 30d, 12h")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


class DurationType(_DurationParam):
    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _friendly(func: F) -> F:
    """Turn the client's and the stores' runtime errors into exit-1 messages (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from shipyard.store.meta import MetaStoreError

        try:
            return func(*args, **kwargs)
        except (ClientError, MetaStoreError) as exc:
            raise click.ClickException(str(exc)) from None
        except (OSError, pickle.UnpicklingError, ImportError) as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None

    return wrapper  # type: ignore[return-value]


# --- formatting --------------------------------------------------------------------------
def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _status(value: str | None) -> str:
    if value is None:
        return "[dim]-[/dim]"
    return f"[{_COLOURS.get(value, 'white')}]{value}[/]"


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def _span(start: datetime | None, end: datetime | None, running: bool) -> str:
    if start is None:
        return "-"
    if end is None:
        return _duration((now() - start).total_seconds()) + "…" if running else "-"
    return _duration((end - start).total_seconds())


def _size(num: int | None) -> str:
    if num is None:
        return "?"
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{num} B"


def _run_duration(record: RunRecord) -> str:
    status = record.status
    end = record.finished_at or (record.heartbeat_at if status is RunStatus.DEAD else None)
    return _span(utc(record.created_at), utc(end) if end else None, status is RunStatus.RUNNING)


def _tail(text: str, lines: int = _LOG_TAIL) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


# --- resolving pathspecs -------------------------------------------------------------------
def _resolve(spec: _pathspec.Pathspec) -> Flow | Run | Step | Task:
    if spec.depth == 1:
        return Flow(spec.flow)
    if spec.depth == 2:
        return Run(str(spec))
    if spec.depth == 3:
        return Run(f"{spec.flow}/{spec.run_id}")[spec.step or ""]
    return Task(str(spec))


def _single_task(spec: _pathspec.Pathspec) -> Task:
    """A task pathspec, or a step pathspec of a step with exactly one task."""
    target = _resolve(spec)
    if isinstance(target, Task):
        return target
    assert isinstance(target, Step)
    tasks = target.tasks()
    if len(tasks) != 1:
        ids = ", ".join(str(t.id) for t in tasks[:5]) or "none"
        raise click.UsageError(
            f"step {target.pathspec} has {len(tasks)} tasks ({ids}); "
            f"name one, e.g. {target.pathspec}/{tasks[0].id if tasks else 'TASK_ID'}"
        )
    return tasks[0]


# --- runs --------------------------------------------------------------------------------
@click.command("runs")
@click.option("--flow", "-f", "flow", metavar="FLOW", help="Only this flow's runs.")
@click.option("--tag", "-t", "tags", multiple=True, metavar="TAG", help="Runs having this tag.")
@click.option(
    "--status",
    "-s",
    type=click.Choice([s.value for s in RunStatus]),
    help="Only runs in this state (dead: the runtime stopped heartbeating).",
)
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@_friendly
def runs_command(flow: str | None, tags: tuple[str, ...], status: str | None, limit: int) -> None:
    """List runs, newest first.

    \b
    Example:
      shipyard runs --flow DigitsFlow --status failed --tag nightly -n 5
    """
    if flow is not None:
        try:
            _pathspec.parse(flow, max_depth=1)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--flow") from None
        Flow(flow)  # NotFound (exit 1) names the flows that exist
    try:
        found = list_runs(flow, tags=tags, status=status, limit=limit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tag") from None
    console = _console()
    if not found:
        console.print("No runs match." if flow or tags or status else "No runs yet.")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("run", "status", "started", "duration", "tags"):
        table.add_column(column, no_wrap=column != "tags")
    for run in found:
        record = run.record
        table.add_row(
            escape(run.pathspec),
            _status(record.status.value),
            _when(run.created_at),
            _run_duration(record),
            escape(", ".join(sorted(record.tags))),
        )
    console.print(table)


# --- show --------------------------------------------------------------------------------
def _show_run(console: Console, run: Run) -> None:
    record = run.record
    console.print(
        f"[bold]{escape(run.pathspec)}[/bold]  {_status(record.status.value)}  "
        f"started {_when(run.created_at)}  ({_run_duration(record)})  by {escape(run.user)}"
    )
    origin = record.origin_run_id
    if origin is not None:
        console.print(f"resumed from {escape(run.flow_name)}/{origin}")
    nest = nesting(run.graph)
    table = Table(box=None, pad_edge=False, show_header=True)
    for column in ("step", "status", "tasks", "duration", "next"):
        table.add_column(column, no_wrap=True)
    for summary in run.step_summaries():
        levels = nest.get(summary.name, ())
        label = "  " * len(levels) + ("└ " if levels else "") + summary.name
        if "foreach" in levels:
            label += f" ×{summary.tasks}"
        nxt = ", ".join(summary.next)
        if summary.type == "foreach" and summary.foreach:
            nxt += f"  (foreach {summary.foreach})"
        elif summary.type == "split":
            nxt += "  (branches)"
        status = summary.status.value if summary.status else None
        running = summary.status in (TaskStatus.RUNNING, TaskStatus.PENDING)
        table.add_row(
            escape(label),
            _status(status),
            f"{summary.done}/{summary.tasks}",
            _span(summary.started_at, summary.finished_at, running),
            escape(f"→ {nxt}" if nxt else ""),
        )
    console.print(table)
    failed = run.tasks(status=TaskStatus.FAILED)[:5]
    for task in failed:
        error = task.exception or {}
        console.print(
            f"[red]failed[/red] {escape(task.pathspec)}: "
            f"{escape(str(error.get('type', '?')))}: {escape(str(error.get('message', '')))}"
            f"  (shipyard logs {escape(task.pathspec)} --stderr)"
        )
    params = run.parameters
    if params:
        console.print("[bold]parameters[/bold]")
        for name, value in sorted(params.items()):
            console.print(f"  {escape(name)} = {escape(repr(value))}")
    console.print(f"[bold]tags[/bold] {escape(', '.join(sorted(record.tags)) or '-')}")


def _show_step(console: Console, step: Step) -> None:
    summary = step.summary
    status = summary.status.value if summary.status else None
    console.print(
        f"[bold]{escape(step.pathspec)}[/bold]  {_status(status)}"
        f"  {summary.done}/{summary.tasks} tasks done"
    )
    table = Table(box=None, pad_edge=False)
    for column in ("task", "index", "status", "attempts", "started", "duration"):
        table.add_column(column, no_wrap=True)
    for task in step.tasks():
        record = task.record  # one query per task: a big foreach stays quick
        running = record.status in (TaskStatus.RUNNING, TaskStatus.PENDING)
        started = utc(record.started_at) if record.started_at else None
        finished = utc(record.finished_at) if record.finished_at else None
        stack = record.foreach_stack
        table.add_row(
            escape(task.pathspec),
            str(stack[-1].get("index", "-")) if stack else "-",
            _status(record.status.value),
            str(record.attempts),
            _when(started),
            _span(started, finished, running),
        )
    console.print(table)


def _show_task(console: Console, task: Task) -> None:
    record = task.record
    index = "" if task.index is None else f"  foreach index {task.index}"
    console.print(
        f"[bold]{escape(task.pathspec)}[/bold]  {_status(record.status.value)}{index}  "
        f"started {_when(task.started_at)}  "
        f"({_span(task.started_at, task.finished_at, not task.finished)})"
    )
    if task.origin_pathspec:
        console.print(f"reused from {escape(task.origin_pathspec)}")
    attempts = Table(title="attempts", title_justify="left", box=None, pad_edge=False)
    for column in ("#", "status", "started", "duration", "pid", "error"):
        attempts.add_column(column, no_wrap=column != "error")
    for attempt in task.attempts:
        error = attempt.error
        attempts.add_row(
            str(attempt.number),
            _status(attempt.status.value),
            _when(attempt.started_at),
            _span(attempt.started_at, attempt.finished_at, attempt.finished_at is None),
            str(attempt.pid or "-"),
            escape(f"{error.get('type')}: {error.get('message')}") if error else "",
        )
    console.print(attempts)
    _artifact_table(console, task)
    for stream in ("stdout", "stderr"):
        text = task.logs(stream=stream)  # type: ignore[arg-type]
        if text:
            console.print(f"[bold]{stream}[/bold] (last {_LOG_TAIL} lines)")
            console.print(escape(_tail(text)))


def _artifact_table(console: Console, task: Task) -> None:
    artifacts = task.artifacts
    if not artifacts:
        console.print("[dim]no artifacts (they are recorded when the task succeeds)[/dim]")
        return
    table = Table(title="artifacts", title_justify="left", box=None, pad_edge=False)
    for column in ("name", "type", "size", "preview"):
        table.add_column(column, no_wrap=column != "preview", overflow="fold")
    for name, artifact in sorted(artifacts.items()):
        table.add_row(
            escape(name), escape(artifact.type_name), _size(artifact.size), escape(artifact.preview)
        )
    console.print(table)


@click.command("show")
@click.argument("pathspec", type=PathspecType())
@_friendly
def show_command(pathspec: _pathspec.Pathspec) -> None:
    """Show a run's DAG and status, a step's tasks, or a task's attempts, artifacts and logs.

    A flow name shows its latest run.

    \b
    Examples:
      shipyard show DigitsFlow
      shipyard show DigitsFlow/12
      shipyard show DigitsFlow/12/train/34
    """
    console = _console()
    target = _resolve(pathspec)
    if isinstance(target, Flow):
        run = target.latest_run
        if run is None:
            raise click.ClickException(f"flow {target.name} has no runs")
        _show_run(console, run)
    elif isinstance(target, Run):
        _show_run(console, target)
    elif isinstance(target, Step):
        _show_step(console, target)
    else:
        _show_task(console, target)


# --- logs --------------------------------------------------------------------------------
@click.command("logs")
@click.argument("pathspec", type=PathspecType(min_depth=2))
@click.option("--stderr", "stderr", is_flag=True, help="Standard error instead of output.")
@click.option(
    "--attempt",
    type=click.IntRange(min=0),
    help="Attempt number (0-based); default: the latest.",
)
@_friendly
def logs_command(pathspec: _pathspec.Pathspec, stderr: bool, attempt: int | None) -> None:
    """Print a task's log; for a step or a run, every task's, each line prefixed step/task_id.

    \b
    Examples:
      shipyard logs DigitsFlow/12/train/34 --stderr
      shipyard logs DigitsFlow/12/train --attempt 0
    """
    stream = "stderr" if stderr else "stdout"
    target = _resolve(pathspec)
    if isinstance(target, Task):
        click.echo(target.logs(attempt, stream), nl=False)  # type: ignore[arg-type]
        return
    tasks = target.tasks() if isinstance(target, Run | Step) else []
    for task in tasks:
        if attempt is not None and attempt >= len(task.attempts):
            continue
        prefix = f"{task.step_name}/{task.id}"
        for line in task.logs(attempt, stream).splitlines():  # type: ignore[arg-type]
            click.echo(f"{prefix} | {line}")


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
@_friendly
def artifacts_list(pathspec: _pathspec.Pathspec) -> None:
    """Name, type, size and preview of a task's artifacts (nothing is unpickled).

    \b
    Example:
      shipyard artifacts list DigitsFlow/12/train/34
    """
    task = _single_task(pathspec)
    console = _console()
    console.print(f"[bold]{escape(task.pathspec)}[/bold]")
    _artifact_table(console, task)


@artifacts_group.command("get")
@click.argument("address", metavar="Flow/run/step/task:name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the value here: bytes and str as they are, anything else pickled.",
)
@_friendly
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
    value = _single_task(spec)[name].data
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
    click.echo(f"wrote {_size(len(data))} to {output}", err=True)


# --- gc ----------------------------------------------------------------------------------
@click.command("gc")
@click.option(
    "--older-than",
    "older_than",
    type=DurationType(),
    help="Delete finished runs created longer ago than this (30d, 12h, 90m).",
)
@click.option(
    "--keep", type=click.IntRange(min=0), help="Keep the newest N runs of each flow, delete older."
)
@click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
@click.option(
    "--grace",
    type=DurationType(),
    default="1h",
    show_default=True,
    help="Never delete unreferenced blobs younger than this (a live run may be writing them).",
)
@_friendly
def gc_command(
    older_than: timedelta | None, keep: int | None, dry_run: bool, grace: timedelta
) -> None:
    """Delete old runs and the stored blobs nothing references any more.

    Running runs are never touched. With both limits, a run goes only if both let it go.

    \b
    Examples:
      shipyard gc --older-than 30d --dry-run
      shipyard gc --keep 10
    """
    from shipyard.client.gc import collect

    if older_than is None and keep is None:
        raise click.UsageError(
            "say what to delete: --older-than DURATION and/or --keep N, "
            "e.g. `shipyard gc --older-than 30d --dry-run`"
        )
    report = collect(older_than=older_than, keep_last=keep, dry_run=dry_run, grace=grace)
    verb = "would delete" if dry_run else "deleted"
    shown = ", ".join(report.runs[:10]) + (", ..." if len(report.runs) > 10 else "")
    click.echo(f"{verb} {len(report.runs)} run(s)" + (f": {shown}" if shown else ""))
    click.echo(f"{verb} {report.blobs} blob(s), {_size(report.bytes)}")
    if report.log_dirs:
        click.echo(f"{verb} {report.log_dirs} leftover log dir(s)")
    if report.young_blobs:
        click.echo(f"kept {report.young_blobs} unreferenced blob(s) younger than the grace period")
    if dry_run and report.runs:
        click.echo("(blobs only these runs use are counted when they are really deleted)")


# --- tag ---------------------------------------------------------------------------------
@click.group("tag")
def tag_group() -> None:
    """Add or remove a run's tags.

    \b
    Examples:
      shipyard tag add DigitsFlow/12 baseline reviewed
      shipyard tag remove DigitsFlow/12 reviewed
    """


def _check_tags(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Any:
    from shipyard.client.run import check_tag

    try:
        return tuple(check_tag(t) for t in value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _tag_command(name: str, add: bool) -> click.Command:
    @click.argument("pathspec", type=PathspecType(min_depth=2, max_depth=2))
    @click.argument("tags", nargs=-1, required=True, callback=_check_tags)
    @_friendly
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

COMMANDS: list[click.Command] = [
    runs_command,
    show_command,
    logs_command,
    artifacts_group,
    gc_command,
    tag_group,
]
