"""Shared pieces of the read-side commands: pathspec and duration option types, the
error handler that turns store problems into exit-1 messages, formatting helpers, and
pathspec resolution."""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Callable
from datetime import datetime, timedelta
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
)
from shipyard.durations import parse_duration
from shipyard.store import pathspec as _pathspec
from shipyard.store.errors import StoreError
from shipyard.store.records import RunRecord, now, utc

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:  # click 8.5 made ParamType generic; older versions are not subscriptable
    _PathspecParam = click.ParamType[_pathspec.Pathspec, Any]
    _DurationParam = click.ParamType[timedelta, Any]
else:
    _PathspecParam = _DurationParam = click.ParamType

COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "killed": "magenta",
    "dead": "bold red",
    "running": "yellow",
    "pending": "dim",
}
LOG_TAIL = 20


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


def exits(
    *, usage: tuple[type[Exception], ...] = (), runtime: tuple[type[Exception], ...] = ()
) -> Callable[[F], F]:
    """A decorator turning errors into click exits without a traceback: ``usage`` ones exit 2,
    ``runtime`` ones (and store, file and unpickling problems) exit 1."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            failures: tuple[type[Exception], ...] = (*runtime, StoreError)
            try:
                return func(*args, **kwargs)
            except usage as exc:
                raise click.UsageError(str(exc)) from None
            except failures as exc:
                raise click.ClickException(str(exc)) from None
            except (OSError, pickle.UnpicklingError, ImportError) as exc:
                raise click.ClickException(f"{type(exc).__name__}: {exc}") from None

        return wrapper  # type: ignore[return-value]

    return decorate


#: the read-side commands: the client's errors are runtime problems
friendly = exits(runtime=(ClientError,))


# --- formatting --------------------------------------------------------------------------
#: the width of tables written to a pipe or a file: wide enough that no row is cut
PIPED_WIDTH = 1000


def make_console() -> Console:
    """The console the commands print tables with. On a terminal, its width; piped or
    redirected, ``COLUMNS`` if set, else wide enough that no cell is cut or folded (rich
    would use 80 columns), so ``grep`` and friends see one row per line."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = PIPED_WIDTH
    return console


def status_markup(value: str | None) -> str:
    if value is None:
        return "[dim]-[/dim]"
    return f"[{COLOURS.get(value, 'white')}]{value}[/]"


def when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def duration(seconds: float | None) -> str:
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


def span(start: datetime | None, end: datetime | None, running: bool) -> str:
    if start is None:
        return "-"
    if end is None:
        return duration((now() - start).total_seconds()) + "…" if running else "-"
    return duration((end - start).total_seconds())


def size(num: int | None) -> str:
    if num is None:
        return "?"
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{num} B"


def run_duration(record: RunRecord) -> str:
    status = record.status
    end = record.finished_at or (record.heartbeat_at if status is RunStatus.DEAD else None)
    return span(utc(record.created_at), utc(end) if end else None, status is RunStatus.RUNNING)


def tail(text: str, lines: int = LOG_TAIL) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


# --- resolving pathspecs -------------------------------------------------------------------
def resolve(spec: _pathspec.Pathspec) -> Flow | Run | Step | Task:
    if spec.depth == 1:
        return Flow(spec.flow)
    if spec.depth == 2:
        return Run(str(spec))
    if spec.depth == 3:
        return Run(f"{spec.flow}/{spec.run_id}")[spec.step or ""]
    return Task(str(spec))


def single_task(spec: _pathspec.Pathspec) -> Task:
    """A task pathspec, or a step pathspec of a step with exactly one task."""
    target = resolve(spec)
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


def artifact_table(console: Console, task: Task) -> None:
    artifacts = task.artifacts
    if not artifacts:
        console.print("[dim]no artifacts (they are recorded when the task succeeds)[/dim]")
        return
    table = Table(title="artifacts", title_justify="left", box=None, pad_edge=False)
    for column in ("name", "type", "size", "preview"):
        table.add_column(column, no_wrap=column != "preview", overflow="fold")
    for name, artifact in sorted(artifacts.items()):
        table.add_row(
            escape(name), escape(artifact.type_name), size(artifact.size), escape(artifact.preview)
        )
    console.print(table)
