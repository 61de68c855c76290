"""The task page: attempts with their errors and tracebacks, artifacts with the type, size
and preview recorded when they were written (the UI never unpickles), and the end of the
chosen attempt's stdout and stderr."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipyard.store.records import AttemptRecord, TaskRecord, TaskStatus
from shipyard.ui import logs
from shipyard.ui.context import PageNotFound, UIContext, parse_id
from shipyard.ui.run import get_run

#: characters of an artifact preview shown before it is cut
PREVIEW_CHARS = 4000


def get_task(ctx: UIContext, request: Request) -> TaskRecord:
    """The task the path names (its flow, run and step must match), or PageNotFound."""
    run = get_run(ctx, request)
    step, task_text = request.path_params["step"], request.path_params["task_id"]
    pathspec = f"{run.pathspec}/{step}/{task_text}"
    record = ctx.meta.get_task(parse_id(task_text, f"task {pathspec}:"))
    if record is None or record.run_id != run.run_id or record.step_name != step:
        raise PageNotFound(f"task {pathspec} does not exist")
    return record


def _chosen(request: Request, attempts: list[AttemptRecord], pathspec: str) -> AttemptRecord | None:
    text = request.query_params.get("attempt")
    if not attempts:
        return None
    if text is None:
        return attempts[-1]
    for attempt in attempts:
        if str(attempt.attempt) == text:
            return attempt
    have = ", ".join(str(a.attempt) for a in attempts)
    raise PageNotFound(f"task {pathspec} has no attempt {text!r}; it has {have}")


def _fingerprint(ctx: UIContext, task: TaskRecord, attempts: list[AttemptRecord]) -> str:
    """Changes when the task or an attempt changes status, or a running attempt logs more."""
    states = ",".join(f"{a.attempt}:{a.status.value}" for a in attempts)
    running = [a for a in attempts if a.status is TaskStatus.RUNNING]
    written = logs.live_size(ctx.home, task, running[-1]) if running else 0
    return f"{task.status.value}|{states}|{written}"


def task_page(ctx: UIContext, request: Request) -> Response:
    task = get_task(ctx, request)
    attempts = ctx.meta.list_attempts(task.task_id)
    chosen = _chosen(request, attempts, task.pathspec)
    output = {
        stream: logs.tail(ctx.blobs, ctx.home, task, chosen, stream) if chosen else ("", False)
        for stream in ("stdout", "stderr")
    }
    origin = ctx.meta.get_task(task.origin_task_id) if task.origin_task_id else None
    return ctx.render(
        request,
        "task.html",
        title=task.pathspec,
        nav="runs",
        task=task,
        attempts=attempts,
        chosen=chosen,
        output=output,
        artifacts=ctx.meta.list_artifacts(task.task_id),
        preview_chars=PREVIEW_CHARS,
        origin=origin,
        live=task.status in (TaskStatus.PENDING, TaskStatus.RUNNING),
        fingerprint=_fingerprint(ctx, task, attempts),
        poll_url=str(request.scope.get("root_path", "")).rstrip("/") + f"/api/runs/{task.pathspec}",
    )


def task_json(ctx: UIContext, request: Request) -> Response:
    task = get_task(ctx, request)
    attempts = ctx.meta.list_attempts(task.task_id)
    return JSONResponse(
        {
            "pathspec": task.pathspec,
            "status": task.status.value,
            "live": task.status in (TaskStatus.PENDING, TaskStatus.RUNNING),
            "fingerprint": _fingerprint(ctx, task, attempts),
            "attempts": [{"attempt": a.attempt, "status": a.status.value} for a in attempts],
        }
    )


__all__ = ["PREVIEW_CHARS", "get_task", "task_json", "task_page"]
