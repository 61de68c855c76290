"""The task page: attempts with their errors and tracebacks, artifacts with the type, size
and preview recorded when they were written (the UI never unpickles), and the end of the
chosen attempt's stdout and stderr; while that attempt runs, the page's script follows its
logs through :func:`task_logs_json`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipyard.store.records import AttemptRecord, TaskRecord, TaskStatus
from shipyard.ui import logs
from shipyard.ui.context import PageError, PageNotFound, UIContext, parse_id
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


def _fingerprint(task: TaskRecord, attempts: list[AttemptRecord]) -> str:
    """Changes when the task or an attempt changes status (the page then reloads); what a
    running attempt logs is followed without reloading (see :func:`task_logs_json`)."""
    states = ",".join(f"{a.attempt}:{a.status.value}" for a in attempts)
    return f"{task.status.value}|{states}"


def task_page(ctx: UIContext, request: Request) -> Response:
    task = get_task(ctx, request)
    attempts = ctx.meta.list_attempts(task.task_id)
    chosen = _chosen(request, attempts, task.pathspec)
    output = {
        stream: logs.tail(ctx.blobs, ctx.home, task, chosen, stream) if chosen else None
        for stream in logs.STREAMS
    }
    api = str(request.scope.get("root_path", "")).rstrip("/") + f"/api/runs/{task.pathspec}"
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
        fingerprint=_fingerprint(task, attempts),
        poll_url=api,
        follow=chosen is not None and chosen.status is TaskStatus.RUNNING,
        logs_url=api + "/logs",
    )


def task_json(ctx: UIContext, request: Request) -> Response:
    task = get_task(ctx, request)
    attempts = ctx.meta.list_attempts(task.task_id)
    return JSONResponse(
        {
            "pathspec": task.pathspec,
            "status": task.status.value,
            "live": task.status in (TaskStatus.PENDING, TaskStatus.RUNNING),
            "fingerprint": _fingerprint(task, attempts),
            "attempts": [{"attempt": a.attempt, "status": a.status.value} for a in attempts],
        }
    )


def _whole(request: Request, name: str, default: str | None = None) -> int:
    text = request.query_params.get(name, default)
    if text is None:
        raise PageError(f"the query parameter {name!r} is missing: add ?{name}=<a number>")
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise PageError(f"{name} {text!r} is not valid: use a whole number, 0 or more")
    return int(text)


def _log_query(request: Request) -> tuple[str, int, int]:
    """``(stream, attempt, offset)`` from the query, or a 400 naming what is wrong."""
    stream = request.query_params.get("stream", "")
    if stream not in logs.STREAMS:
        raise PageError(f"stream {stream!r} is not a log: use stream=stdout or stream=stderr")
    return stream, _whole(request, "attempt"), _whole(request, "offset", "0")


def _attempt(ctx: UIContext, task: TaskRecord, number: int) -> AttemptRecord:
    attempts = ctx.meta.list_attempts(task.task_id)
    for attempt in attempts:
        if attempt.attempt == number:
            return attempt
    have = ", ".join(str(a.attempt) for a in attempts) or "none yet"
    raise PageNotFound(f"task {task.pathspec} has no attempt {number}; it has {have}")


def task_logs_json(ctx: UIContext, request: Request) -> Response:
    """``?attempt=N&stream=stdout|stderr&offset=K`` -> ``{"text", "offset", "more",
    "done", "status"}``: at most :data:`~shipyard.ui.logs.CHUNK_BYTES` of the log from byte
    ``K``; poll again from ``offset`` (at once if ``more``) until ``done``. The live file
    of a running attempt, then the blob that replaces it when it ends (same offsets)."""
    task = get_task(ctx, request)
    stream, number, offset = _log_query(request)
    for _ in range(2):  # the live file vanishes when the attempt ends: read the attempt again
        attempt = _attempt(ctx, task, number)
        try:
            chunk = logs.follow(ctx.blobs, ctx.home, task, attempt, stream, offset)
        except logs.LogOffsetError as exc:
            raise PageError(str(exc)) from None
        if not chunk.missing:
            break
    return JSONResponse(
        {
            "text": chunk.text,
            "offset": chunk.offset,
            "more": chunk.more,
            "done": chunk.done,
            "status": attempt.status.value,
        }
    )


__all__ = ["PREVIEW_CHARS", "get_task", "task_json", "task_logs_json", "task_page"]
