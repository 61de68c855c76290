"""The deployments pages: each active service with its current version, replicas and its
traffic over the last hour (rps, error rate, p50, p99 from the host's history, read through
:class:`~shipyard.ui.context.LiveHost`, drawn by :mod:`shipyard.ui.charts`), and one
service's version history and its logs. Inside the host the replica states are the live ones;
the UI alone (``shipyard ui``) shows the desired state kept in the metadata database, without
charts.

The service page's Logs panel shows the last :data:`LOG_LINES` lines of its replicas, merged
in time order (:mod:`shipyard.serve.logs`, the same reader as ``shipyard service logs``);
``?error_id=ID`` keeps the lines of that one failure, and every error id shown links there.

The JSON twins: ``/api/deployments`` (what the page polls: its fingerprint changes with every
new sample, and the page redraws), ``/api/deployments/{service}/history`` (the points) and
``/api/deployments/{service}/logs?after=CURSOR`` (the log lines written since the cursor,
what the Logs panel polls to follow)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipyard.serve.deployments import (
    Deployment,
    DeploymentStore,
    DeploymentVersion,
    VersionStatus,
)
from shipyard.serve.follow import FollowStore
from shipyard.serve.history import Point
from shipyard.serve.live import ServiceState
from shipyard.serve.logs import Cursor, LogLine, LogsError, read_logs, render
from shipyard.ui.charts import SPAN, Chart, service_charts
from shipyard.ui.context import PageError, PageNotFound, UIContext
from shipyard.ui.loadtests import recent_loadtests

#: log lines the deployment page shows (the last ones)
LOG_LINES = 200
#: the longest error id the Logs panel's filter takes (ours are 16 hex digits)
MAX_ERROR_ID = 64


@dataclass(frozen=True)
class ServiceView:
    """One row of the deployments page."""

    deployment: Deployment
    ready: int | None  # ready replicas on this host; None outside the host
    starting: int | None
    endpoints: list[str]
    charts: list[Chart] = field(default_factory=list)  # empty outside the host


def _points(ctx: UIContext, service: str, now: float) -> list[Point]:
    if ctx.live is None:
        return []
    return ctx.live.traffic(service, since=now - SPAN)


def _view(
    ctx: UIContext, deployment: Deployment, now: float, live: ServiceState | None
) -> ServiceView:
    if ctx.live is None:
        return ServiceView(deployment, None, None, [])
    charts = service_charts(_points(ctx, deployment.service, now), now=now)
    if live is None:
        return ServiceView(deployment, 0, 0, [], charts)
    return ServiceView(deployment, live.ready, live.starting, list(live.endpoints), charts)


def _polling(ctx: UIContext, request: Request) -> dict[str, object]:
    """The page context that makes ui.js redraw the page when a new sample is taken."""
    if ctx.live is None:
        return {}
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return {
        "live": True,
        "fingerprint": _fingerprint(ctx),
        "poll_url": base + "/api/deployments",
    }


def _fingerprint(ctx: UIContext) -> str:
    last = ctx.live.last_sample() if ctx.live is not None else None
    return f"{last:.3f}" if last is not None else "-"


def _store(ctx: UIContext) -> DeploymentStore:
    return DeploymentStore(ctx.meta)


def deployments_page(ctx: UIContext, request: Request) -> Response:
    now = time.time()
    live = ctx.live.live_services() if ctx.live is not None else {}
    services = [_view(ctx, d, now, live.get(d.service)) for d in _store(ctx).active()]
    return ctx.render(
        request,
        "deployments.html",
        title="Deployments",
        nav="deployments",
        services=services,
        **_polling(ctx, request),
    )


def deployments_json(ctx: UIContext, request: Request) -> Response:
    """What the deployments page polls: a fingerprint and each active service's points."""
    now = time.time()
    services = {
        d.service: [p.to_json() for p in _points(ctx, d.service, now)] for d in _store(ctx).active()
    }
    body = {"live": ctx.live is not None, "fingerprint": _fingerprint(ctx), "services": services}
    return JSONResponse(body)


def history_json(ctx: UIContext, request: Request) -> Response:
    """One service's points over the last hour (404 for a service never deployed)."""
    name = request.path_params["service"]
    if _store(ctx).get(name) is None:
        raise PageNotFound(f"no service named {name!r} was ever deployed")
    points = _points(ctx, name, time.time())
    return JSONResponse({"service": name, "points": [p.to_json() for p in points]})


def deployment_page(ctx: UIContext, request: Request) -> Response:
    name = request.path_params["service"]
    store = _store(ctx)
    deployment = store.get(name)
    if deployment is None:
        raise PageNotFound(f"no service named {name!r} was ever deployed")
    versions = store.versions(name)
    live = ctx.live.live_service(name) if ctx.live is not None else None
    error_id = _error_id(request)
    logs = read_logs(ctx.home, name, error_id=error_id, tail=None if error_id else LOG_LINES)
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return ctx.render(
        request,
        "deployment.html",
        title=f"Service {name}",
        nav="deployments",
        service=_view(ctx, deployment, time.time(), live),
        versions=list(reversed(versions)),
        replicas=list(live.replicas) if live is not None else [],
        rollback_to=_rollback_target(deployment, versions),
        follows=FollowStore(ctx.meta).of(name),
        log_lines=[LogView.of(line) for line in logs.lines[-LOG_LINES:]],
        log_cursor=str(logs.cursor),
        log_directory=str(logs.directory),
        log_files=logs.files,
        log_error_id=error_id,
        log_url=f"{base}/api/deployments/{name}/logs",
        loadtests=recent_loadtests(ctx.meta, name),
        **_polling(ctx, request),
    )


@dataclass(frozen=True)
class LogView:
    """One log line on the page: its ``head`` (time, version and replica, event, message),
    the ``rest`` below it (a traceback, indented; "" for none) and its ``error_id``."""

    head: str
    rest: str
    error_id: str | None

    @classmethod
    def of(cls, line: LogLine) -> LogView:
        head, _, rest = render(line).partition("\n")
        return cls(head, rest, line.error_id)

    def to_json(self) -> dict[str, str | None]:
        return {"head": self.head, "rest": self.rest, "error_id": self.error_id}


def _error_id(request: Request) -> str | None:
    error_id = request.query_params.get("error_id", "").strip() or None
    if error_id is not None and len(error_id) > MAX_ERROR_ID:
        raise PageError(f"an error id has at most {MAX_ERROR_ID} characters")
    return error_id


def deployment_logs_json(ctx: UIContext, request: Request) -> Response:
    """The log lines of a service written after ``?after=CURSOR`` (without one: the last
    :data:`LOG_LINES`), filtered by ``?error_id=``; and the cursor to poll with next."""
    name = request.path_params["service"]
    if _store(ctx).get(name) is None:
        raise PageNotFound(f"no service named {name!r} was ever deployed")
    error_id = _error_id(request)
    try:
        after = (
            Cursor.parse(request.query_params["after"]) if "after" in request.query_params else None
        )
    except LogsError as exc:
        raise PageError(str(exc)) from None
    page = read_logs(
        ctx.home, name, error_id=error_id, after=after, tail=None if after else LOG_LINES
    )
    return JSONResponse(
        {"lines": [LogView.of(line).to_json() for line in page.lines], "cursor": str(page.cursor)}
    )


def _rollback_target(deployment: Deployment, versions: list[DeploymentVersion]) -> int | None:
    """The version a rollback would bring back (the admin API's rule), or None."""
    current = deployment.current_version
    if not deployment.active or current is None:
        return None
    earlier = [
        v.version
        for v in versions
        if v.version < current and v.status in (VersionStatus.RETIRED, VersionStatus.LIVE)
    ]
    return earlier[-1] if earlier else None


__all__ = [
    "LOG_LINES",
    "LogView",
    "ServiceView",
    "deployment_logs_json",
    "deployment_page",
    "deployments_json",
    "deployments_page",
    "history_json",
]
