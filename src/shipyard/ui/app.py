"""The UI as an ASGI app: :func:`make_ui` (mounted at ``/ui`` in the host by
:mod:`shipyard._app`) and :func:`standalone` (what ``shipyard ui`` serves: the same pages
under ``/ui``, read-only).

Every page is a plain function ``(UIContext, Request) -> Response`` run in a worker thread
(the stores are synchronous and must not stall the host's event loop), behind the sign-in
check of :mod:`shipyard.ui.auth`. A handler answers an unknown id with
:class:`~shipyard.ui.context.PageNotFound` (a 404 page); any other failure becomes a 500
page with an error id to find in the logs, never a traceback. Every response carries the
security headers of :mod:`shipyard.ui.headers`.

Routes (relative to the mount point)::

    /                                   -> /runs
    /runs                               runs (filters: flow, status, tag, since; page)
    /runs/{flow}/{run_id}               DAG, timeline, parameters, tags
    /runs/{flow}/{run_id}/{step}        the step's tasks
    /runs/{flow}/{run_id}/{step}/{id}   attempts, errors, artifacts, logs
    /runs/{flow}/{run_id}/{step}/{id}/cards/{card_id}   one card (its own CSP, sandboxed)
    /schedules, /schedules/{name}       schedules; one schedule's versions and fire history
    /models, /models/{name}             models; one model's versions
    /deployments, /deployments/{name}   services with last-hour charts; one service's versions
    /gateway                            gateway routes (no secrets) and usage (?period=hour|day)
    /cache, /cache/{namespace}          cache namespaces; one namespace's versions
    /api/runs[/{flow}/{run_id}[/{step}/{id}]]   the JSON the pages poll while live
    /api/runs/{flow}/{run_id}/{step}/{id}/logs  a running attempt's log from an offset
    /api/deployments[/{name}/history]   the charts' points
    /api/deployments/{name}/logs        a service's log lines (?after=CURSOR: written since)
    /actions/...                        POST JSON, admin keys only (see shipyard.ui.actions)
    /signin, /signout                   the key cookie
    /static/...                         our CSS and JS
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from shipyard.errors import error_response, new_error_id
from shipyard.keys import Guard
from shipyard.store.blobs import BlobStore
from shipyard.store.meta import MetaStore
from shipyard.ui import actions, auth, formats
from shipyard.ui.cache import cache_page, namespace_page
from shipyard.ui.cards import card_page
from shipyard.ui.context import LiveHost, PageError, UIContext
from shipyard.ui.dag import step_status
from shipyard.ui.deployments import (
    deployment_logs_json,
    deployment_page,
    deployments_json,
    deployments_page,
    history_json,
)
from shipyard.ui.gateway import gateway_page
from shipyard.ui.headers import SECURITY_HEADERS, SecurityHeaders
from shipyard.ui.loadtests import loadtest_report
from shipyard.ui.models import model_page, models_page
from shipyard.ui.run import run_json, run_page, step_page
from shipyard.ui.runs import runs_json, runs_page
from shipyard.ui.schedules import schedule_page, schedules_page
from shipyard.ui.task import task_json, task_logs_json, task_page
from shipyard.ui.triggers import TriggerView

if TYPE_CHECKING:
    from shipyard.gateway import Gateway

log = logging.getLogger("shipyard.ui")

HERE = Path(__file__).parent

Handler = Callable[[UIContext, Request], Response]
Action = Callable[[UIContext, Request], Awaitable[Response]]


def templates() -> Jinja2Templates:
    """The page templates, autoescaped, with the formatting filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=formats.when,
        epoch=formats.epoch,
        duration=formats.duration,
        size=formats.size,
        shorten=formats.shorten,
        took=lambda item: formats.duration(
            formats.seconds_between(item.started_at, item.finished_at)
        ),
        took_run=lambda run: formats.duration(
            formats.seconds_between(run.created_at, run.finished_at)
        ),
        took_summary=lambda s: formats.duration(
            formats.seconds_between(s["started_at"], s["finished_at"])
        ),
        step_status=step_status,
        trigger=lambda run: TriggerView.of(run.trigger),
    )
    return Jinja2Templates(env=env)


def _page(
    ctx: UIContext, handler: Handler, *, api: bool = False
) -> Callable[..., Awaitable[Response]]:
    """``handler`` as an endpoint: sign-in check, a worker thread, error pages."""

    def call(request: Request) -> Response:
        denied = auth.authorize(ctx, request, api=api)
        if denied is not None:
            return denied
        try:
            return handler(ctx, request)
        except PageError as exc:
            if api:
                kind = "not_found" if exc.status == 404 else "bad_request"
                return error_response(exc.status, kind, exc.message)
            title = "Not found" if exc.status == 404 else "Bad request"
            return ctx.render(request, "error.html", exc.status, title=title, message=exc.message)
        except Exception:
            return _failed(ctx, request, "the UI failed on this page", api=api)

    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(call, request)

    endpoint.__name__ = handler.__name__
    return endpoint


def _action(ctx: UIContext, handler: Action) -> Callable[..., Awaitable[Response]]:
    """``handler`` as an endpoint: async (it awaits the host's admin API on this loop),
    behind the UI's own sign-in check, errors as JSON."""

    async def endpoint(request: Request) -> Response:
        denied = await run_in_threadpool(auth.authorize, ctx, request, api=True)
        if denied is not None:
            return denied
        try:
            return await handler(ctx, request)
        except Exception:
            return _failed(ctx, request, "the action failed", api=True)

    endpoint.__name__ = handler.__name__
    return endpoint


def _failed(ctx: UIContext, request: Request, what: str, *, api: bool) -> Response:
    """The answer to an unexpected failure (call it in an ``except``): logged with its
    traceback under a new error id, answered with the id only."""
    error_id = new_error_id()
    log.exception("UI error %s on %s %s", error_id, request.method, request.url.path)
    message = f"{what} (error id {error_id}); see the server's log"
    if api:
        return error_response(500, "internal_error", message, error_id=error_id)
    return ctx.render(request, "error.html", 500, title="Error", message=message)


def _routes(ctx: UIContext) -> list[BaseRoute]:
    async def home(request: Request) -> Response:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        return RedirectResponse(base + "/runs", status_code=307)

    async def signin(request: Request) -> Response:
        return await auth.signin(ctx, request)

    async def signout(request: Request) -> Response:
        return await auth.signout(ctx, request)

    run = "/runs/{flow}/{run_id}"
    return [
        Route("/", home),
        Route("/runs", _page(ctx, runs_page)),
        Route(run, _page(ctx, run_page)),
        Route(run + "/{step}", _page(ctx, step_page)),
        Route(run + "/{step}/{task_id}", _page(ctx, task_page)),
        Route(run + "/{step}/{task_id}/cards/{card_id}", _page(ctx, card_page)),
        Route("/schedules", _page(ctx, schedules_page)),
        Route("/schedules/{name}", _page(ctx, schedule_page)),
        Route("/models", _page(ctx, models_page)),
        Route("/models/{name}", _page(ctx, model_page)),
        Route("/deployments", _page(ctx, deployments_page)),
        Route("/deployments/{service}", _page(ctx, deployment_page)),
        Route("/deployments/{service}/loadtests/{loadtest_id}", _page(ctx, loadtest_report)),
        Route("/gateway", _page(ctx, gateway_page)),
        Route("/cache", _page(ctx, cache_page)),
        Route("/cache/{namespace}", _page(ctx, namespace_page)),
        Route("/api/deployments", _page(ctx, deployments_json, api=True)),
        Route("/api/deployments/{service}/history", _page(ctx, history_json, api=True)),
        Route("/api/deployments/{service}/logs", _page(ctx, deployment_logs_json, api=True)),
        Route(
            "/actions/models/{name}/aliases/{alias}",
            _action(ctx, actions.move_alias),
            methods=["POST"],
        ),
        Route(
            "/actions/deployments/{service}/rollback",
            _action(ctx, actions.rollback),
            methods=["POST"],
        ),
        Route(
            "/actions/schedules/{name}/pause",
            _action(ctx, actions.pause_schedule),
            methods=["POST"],
        ),
        Route(
            "/actions/schedules/{name}/resume",
            _action(ctx, actions.resume_schedule),
            methods=["POST"],
        ),
        Route("/api/runs", _page(ctx, runs_json, api=True)),
        Route("/api" + run, _page(ctx, run_json, api=True)),
        Route("/api" + run + "/{step}/{task_id}", _page(ctx, task_json, api=True)),
        Route("/api" + run + "/{step}/{task_id}/logs", _page(ctx, task_logs_json, api=True)),
        Route("/signin", signin, methods=["GET", "POST"]),
        Route("/signout", signout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def make_ui(
    meta: MetaStore,
    blobs: BlobStore,
    guard: Guard,
    *,
    read_only: bool = False,
    live: LiveHost | None = None,
    gateway: Gateway | None = None,
    home: Path | None = None,
) -> Starlette:
    """The UI's ASGI app, to mount at ``/ui``.

    >>> app = Starlette(routes=[Mount("/ui", make_ui(meta, blobs, guard))])  # doctest: +SKIP

    ``live``: the host it is mounted in (deployments then show live replicas and charts), or
    None; ``gateway``: the gateway mounted beside it (the gateway page shows its routes).
    Actions (move an alias, roll back) need a host and a signed-in key with scope ``admin``;
    ``read_only=True`` turns them off altogether. ``home``: SHIPYARD_HOME (default: the
    settings').
    """
    if home is None:
        from shipyard.config import settings

        home = settings().home
    ctx = UIContext(
        meta=meta,
        blobs=blobs,
        guard=guard,
        templates=templates(),
        home=home,
        read_only=read_only or live is None,
        live=live,
        gateway=gateway,
    )

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = f"there is no page at {request.url.path}"
        if status != 404:
            message = f"{request.method} is not allowed on {request.url.path}"
        return ctx.render(request, "error.html", status, title="Not found", message=message)

    return Starlette(
        routes=_routes(ctx),
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: not_found},
    )


def standalone(
    meta: MetaStore, blobs: BlobStore, guard: Guard, *, read_only: bool = True
) -> Starlette:
    """What ``shipyard ui`` serves: the UI under ``/ui`` and ``/`` redirecting there."""

    async def home(request: Request) -> Response:
        return RedirectResponse("/ui/runs", status_code=307)

    return Starlette(
        routes=[
            Route("/", home),
            Mount("/ui", make_ui(meta, blobs, guard, read_only=read_only)),
        ]
    )


__all__ = ["SECURITY_HEADERS", "make_ui", "standalone", "templates"]
