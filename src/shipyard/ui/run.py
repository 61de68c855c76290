"""The run page (DAG, timeline, parameters, tags), the step page (its tasks, a page at a
time) and the run's JSON twin that the run page polls while the run is running."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipyard.flow.failures import CAUSES
from shipyard.store.records import Node, RunRecord, RunStatus, TaskRecord, TaskStatus
from shipyard.ui import dag, timeline
from shipyard.ui.context import PageError, PageNotFound, UIContext, parse_id
from shipyard.ui.queries import step_tasks

TASKS_PER_PAGE = 100
#: failed tasks the run page names with their cause
FAILURES_SHOWN = 5


def get_run(ctx: UIContext, request: Request) -> RunRecord:
    """The run the path names, or :class:`PageNotFound`."""
    flow, run_text = request.path_params["flow"], request.path_params["run_id"]
    run_id = parse_id(run_text, f"run {flow}/{run_text}:")
    record = ctx.meta.get_run(flow, run_id)
    if record is None:
        raise PageNotFound(f"run {flow}/{run_text} does not exist (`shipyard runs` lists runs)")
    return record


def _fingerprint(run: RunRecord, summaries: list[dict[str, Any]]) -> str:
    counts = ";".join(
        f"{s['step_name']}=" + ",".join(f"{k}{v}" for k, v in sorted(s["counts"].items()) if v)
        for s in summaries
    )
    return f"{run.status.value}|{counts}"


def _failures(
    ctx: UIContext, run: RunRecord, summaries: list[dict[str, Any]], tasks: list[TaskRecord] | None
) -> list[dict[str, Any]]:
    """The run's first failed tasks, each with its last attempt's error (its named cause,
    the facts and the end of its log) and what the cause means."""
    failed: list[TaskRecord] = []
    for summary in summaries:
        if not summary["counts"].get("failed") or len(failed) >= FAILURES_SHOWN:
            continue
        step = summary["step_name"]
        rows = (
            [t for t in tasks if t.step_name == step]
            if tasks is not None
            else ctx.meta.list_tasks(run.run_id, step)
        )
        failed += [t for t in rows if t.status is TaskStatus.FAILED]
    shown = []
    for task in failed[:FAILURES_SHOWN]:
        attempts = ctx.meta.list_attempts(task.task_id)
        error = (attempts[-1].error if attempts else None) or {}
        # a failed task may have no error recorded (its attempt's record was cut short)
        kind = str(error.get("type") or "?")
        message = str(error.get("message") or "no error was recorded for its last attempt")
        shown.append(
            {"task": task, "type": kind, "message": message, "about": CAUSES.get(kind, "")}
        )
    return shown


def run_page(ctx: UIContext, request: Request) -> Response:
    run = get_run(ctx, request)
    summaries = ctx.meta.step_summaries(run.run_id)
    total = sum(int(s["tasks"]) for s in summaries)
    tasks = ctx.meta.list_tasks(run.run_id) if total <= timeline.MAX_TASK_ROWS else None
    base = str(request.scope.get("root_path", "")).rstrip("/")
    prefix = f"{base}/runs/{run.pathspec}"
    bars = timeline.build(
        run.created_at,
        tasks,
        summaries,
        prefix + "/{step}/{task}",
        prefix + "/{step}",
        nodes=_nodes(ctx, tasks or []),
    )
    return ctx.render(
        request,
        "run.html",
        title=run.pathspec,
        nav="runs",
        run=run,
        summaries=summaries,
        total_tasks=total,
        dag=dag.layout(run.graph, summaries),
        timeline=bars,
        live=run.status is RunStatus.RUNNING,
        fingerprint=_fingerprint(run, summaries),
        poll_url=f"{base}/api/runs/{run.pathspec}",
        failures=_failures(ctx, run, summaries, tasks),
    )


def _nodes(ctx: UIContext, tasks: list[TaskRecord]) -> dict[int, Node]:
    """task id -> the Ray node its latest attempt ran on (``--executor ray``): from the
    result of a task that succeeded, from the error of one whose last attempt failed."""
    found: dict[int, Node] = {}
    for t in tasks:
        node = Node.from_fields(t.result)
        if node is None and t.status is TaskStatus.FAILED and any(found.values()):
            attempts = ctx.meta.list_attempts(t.task_id)  # few: only failed tasks of Ray runs
            node = Node.from_fields(attempts[-1].error) if attempts else None
        if node is not None:
            found[t.task_id] = node
    return found


def run_json(ctx: UIContext, request: Request) -> Response:
    run = get_run(ctx, request)
    summaries = ctx.meta.step_summaries(run.run_id)
    return JSONResponse(
        {
            "pathspec": run.pathspec,
            "status": run.status.value,
            "live": run.status is RunStatus.RUNNING,
            "fingerprint": _fingerprint(run, summaries),
            "steps": [
                {
                    "step_name": s["step_name"],
                    "tasks": s["tasks"],
                    "counts": s["counts"],
                    "reused": s["reused"],  # tasks a resume reused from the origin run
                }
                for s in summaries
            ],
        }
    )


def step_page(ctx: UIContext, request: Request) -> Response:
    run = get_run(ctx, request)
    step_name = request.path_params["step"]
    node = (run.graph.get("steps") or {}).get(step_name)
    page_text = request.query_params.get("page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= 1_000_000:
        raise PageError(f"page {page_text!r} is not a page number (1, 2, ...)")
    page = int(page_text)
    rows, total = step_tasks(
        ctx.meta, run.run_id, step_name, limit=TASKS_PER_PAGE, offset=(page - 1) * TASKS_PER_PAGE
    )
    if node is None and total == 0:
        steps = ", ".join(run.graph.get("order") or run.graph.get("steps") or ())
        raise PageNotFound(f"run {run.pathspec} has no step {step_name!r}; its steps: {steps}")
    summary = next(
        (s for s in ctx.meta.step_summaries(run.run_id) if s["step_name"] == step_name), None
    )
    return ctx.render(
        request,
        "step.html",
        title=f"{run.pathspec}/{step_name}",
        nav="runs",
        run=run,
        step_name=step_name,
        node={
            "type": (node or {}).get("type"),
            "foreach": (node or {}).get("foreach"),
            "decorators": (node or {}).get("decorators") or [],
            "doc": (node or {}).get("doc"),
        },
        summary=summary,
        status=dag.step_status(summary),
        tasks=rows,
        total=total,
        page=page,
        has_next=page * TASKS_PER_PAGE < total,
        page_query=lambda number: f"page={number}",
    )


__all__ = ["TASKS_PER_PAGE", "get_run", "run_json", "run_page", "step_page"]
