"""``shipyard runs``, ``show`` and ``logs``: look at runs, their DAGs, tasks and output.

Errors: a missing run/task or a store problem exits 1; a malformed pathspec or option
exits 2, each with a hint.
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shipyard.cli._common import (
    LOG_TAIL,
    PathspecType,
    artifact_table,
    friendly,
    make_console,
    resolve,
    run_duration,
    span,
    status_markup,
    when,
)
from shipyard.client import (
    Flow,
    Run,
    RunStatus,
    Step,
    Task,
    TaskStatus,
    list_runs,
)
from shipyard.client.dag import nesting
from shipyard.store import pathspec as _pathspec
from shipyard.store.records import Node, TaskRecord, utc


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
@friendly
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
    console = make_console()
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
            status_markup(record.status.value),
            when(run.created_at),
            run_duration(record),
            escape(", ".join(sorted(record.tags))),
        )
    console.print(table)


# --- show --------------------------------------------------------------------------------
def _show_run(console: Console, run: Run) -> None:
    record = run.record
    console.print(
        f"[bold]{escape(run.pathspec)}[/bold]  {status_markup(record.status.value)}  "
        f"started {when(run.created_at)}  ({run_duration(record)})  by {escape(run.user)}"
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
        took = span(summary.started_at, summary.finished_at, running)
        if summary.reused:  # reused tasks ran in the origin run: their time is not counted
            took = (
                "reused" if summary.reused == summary.tasks else f"{took} ({summary.reused} reused)"
            )
        table.add_row(
            escape(label),
            status_markup(status),
            f"{summary.done}/{summary.tasks}",
            took,
            escape(f"→ {nxt}" if nxt else ""),
        )
    console.print(table)
    _show_nodes(console, run)
    failed = run.tasks(status=TaskStatus.FAILED)[:5]
    for task in failed:
        error = task.exception or {}
        console.print(
            f"[red]failed[/red] {escape(task.pathspec)}: "
            f"{escape(str(error.get('type', '?')))}: {escape(str(error.get('message', '')))}"
            f"  (shipyard logs {escape(task.pathspec)})"
        )
    params = run.parameters
    if params:
        console.print("[bold]parameters[/bold]")
        for name, value in sorted(params.items()):
            console.print(f"  {escape(name)} = {escape(repr(value))}")
    console.print(f"[bold]tags[/bold] {escape(', '.join(sorted(record.tags)) or '-')}")


def _show_nodes(console: Console, run: Run) -> None:
    """``--executor ray``: how many tasks each Ray node ran (from the tasks' results)."""
    counts = run.nodes()
    if counts:
        console.print("[bold]nodes[/bold] (Ray; tasks that ran there)")
        for node, count in sorted(counts.items(), key=lambda item: str(item[0])):
            console.print(f"  {escape(str(node))}  {count}")


def _show_step(console: Console, step: Step) -> None:
    summary = step.summary
    status = summary.status.value if summary.status else None
    console.print(
        f"[bold]{escape(step.pathspec)}[/bold]  {status_markup(status)}"
        f"  {summary.done}/{summary.tasks} tasks done"
    )
    table = Table(box=None, pad_edge=False)
    tasks = step.tasks()
    records = [task.record for task in tasks]  # one query per task: a big foreach stays quick
    nodes = [_task_node(task, record) for task, record in zip(tasks, records, strict=True)]
    columns = ["task", "index", "status", "attempts", "started", "duration"]
    if any(nodes):  # --executor ray: where each task ran
        columns.append("node")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for task, record, node in zip(tasks, records, nodes, strict=True):
        running = record.status in (TaskStatus.RUNNING, TaskStatus.PENDING)
        started = utc(record.started_at) if record.started_at else None
        finished = utc(record.finished_at) if record.finished_at else None
        stack = record.foreach_stack
        reused = record.origin_task_id is not None  # it ran in the origin run
        table.add_row(
            escape(task.pathspec),
            str(stack[-1].get("index", "-")) if stack else "-",
            status_markup(record.status.value) + (" (reused)" if reused else ""),
            str(record.attempts),
            when(started),
            "reused" if reused else span(started, finished, running),
            *([escape(str(node or "-"))] if len(columns) > 6 else []),
        )
    console.print(table)


def _task_node(task: Task, record: TaskRecord) -> Node | None:
    """Where the task's latest attempt ran: from its result once it succeeded (no query),
    else from its attempts (a failed attempt records its node with its error)."""
    if record.result.get("node") or record.status is TaskStatus.SUCCEEDED:
        return Node.from_fields(record.result)
    return task.node if record.attempts else None


def _show_task(console: Console, task: Task) -> None:
    record = task.record
    index = "" if task.index is None else f"  foreach index {task.index}"
    console.print(
        f"[bold]{escape(task.pathspec)}[/bold]  {status_markup(record.status.value)}{index}  "
        f"started {when(task.started_at)}  "
        f"({span(task.started_at, task.finished_at, not task.finished)})"
    )
    if task.origin_pathspec:
        console.print(f"reused from {escape(task.origin_pathspec)}")
    attempts = Table(title="attempts", title_justify="left", box=None, pad_edge=False)
    tried = task.attempts
    nodes = [attempt.node for attempt in tried]
    columns = ["#", "status", "started", "duration", "pid", "error"]
    if any(nodes):  # --executor ray: the node each attempt ran on
        columns.insert(5, "node")
    for column in columns:
        attempts.add_column(column, no_wrap=column != "error")
    for attempt, node in zip(tried, nodes, strict=True):
        error = attempt.error
        attempts.add_row(
            str(attempt.number),
            status_markup(attempt.status.value),
            when(attempt.started_at),
            span(attempt.started_at, attempt.finished_at, attempt.finished_at is None),
            str(attempt.pid or "-"),
            *([escape(str(node or "-"))] if "node" in columns else []),
            escape(f"{error.get('type')}: {error.get('message')}") if error else "",
        )
    console.print(attempts)
    artifact_table(console, task)
    lines = task.output()[-LOG_TAIL:]  # both streams, in the order they were written
    if lines:
        console.print(
            f"[bold]output[/bold] (last {LOG_TAIL} lines, standard error in red; "
            f"all of it: shipyard logs {escape(task.pathspec)})"
        )
        for line in lines:
            text = escape(line.text)
            console.print(f"[red]{text}[/red]" if line.stream == "stderr" else text)


@click.command("show")
@click.argument("pathspec", type=PathspecType())
@friendly
def show_command(pathspec: _pathspec.Pathspec) -> None:
    """Show a run's DAG and status, a step's tasks, or a task's attempts, artifacts and logs.

    A flow name shows its latest run.

    \b
    Examples:
      shipyard show DigitsFlow
      shipyard show DigitsFlow/12
      shipyard show DigitsFlow/12/train/34
    """
    console = make_console()
    target = resolve(pathspec)
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
@click.option(
    "--both",
    "stream",
    flag_value="both",
    default=True,
    help="Standard output and error, interleaved in the order written (the default).",
)
@click.option("--stdout", "stream", flag_value="stdout", help="Only standard output.")
@click.option("--stderr", "stream", flag_value="stderr", help="Only standard error.")
@click.option(
    "--timestamps", is_flag=True, help="Start each line with the time it was written (UTC)."
)
@click.option(
    "--attempt",
    type=click.IntRange(min=0),
    help="Attempt number (0-based); default: the latest.",
)
@friendly
def logs_command(
    pathspec: _pathspec.Pathspec, stream: str, timestamps: bool, attempt: int | None
) -> None:
    """Print a task's output: standard output and error, interleaved in the order they were
    written (a failed task's traceback among its prints). For a step or a run, every task's,
    each line prefixed step/task_id.

    \b
    Examples:
      shipyard logs DigitsFlow/12/train/34
      shipyard logs DigitsFlow/12/train/34 --stderr --timestamps
      shipyard logs DigitsFlow/12/train --attempt 0
    """
    target = resolve(pathspec)
    one = isinstance(target, Task)
    tasks: list[Task] = []
    if isinstance(target, Task):
        tasks = [target]
    elif isinstance(target, Run | Step):
        tasks = target.tasks()
    for task in tasks:
        if not one and attempt is not None and attempt >= len(task.attempts):
            continue
        prefix = "" if one else f"{task.step_name}/{task.id} | "
        for line in task.output(attempt, stream):  # type: ignore[arg-type]
            stamp = ""
            if timestamps:
                stamp = f"{line.time:%Y-%m-%d %H:%M:%S.%f} " if line.time else " " * 27
            click.echo(f"{prefix}{stamp}{line.text}")


COMMANDS: list[click.Command] = [runs_command, show_command, logs_command]
