"""The deployments pages: each active service with its current version, replicas and its
traffic over the last hour (rps, error rate, p50, p99 from the host's history, read through
:class:`~shipyard.ui.context.LiveHost`, drawn by :mod:`shipyard.ui.charts`), and one
service's version history. Inside the host the replica states are the live ones; the UI alone
(``shipyard ui``) shows the desired state kept in the metadata database, without charts.

The JSON twins: ``/api/deployments`` (what the page polls: its fingerprint changes with every
new sample, and the page redraws) and ``/api/deployments/{service}/history`` (the points)."""

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
from shipyard.serve.history import Point
from shipyard.serve.live import ServiceState
from shipyard.ui.charts import SPAN, Chart, service_charts
from shipyard.ui.context import PageNotFound, UIContext
from shipyard.ui.loadtests import recent_loadtests


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
    return ctx.render(
        request,
        "deployment.html",
        title=f"Service {name}",
        nav="deployments",
        service=_view(ctx, deployment, time.time(), live),
        versions=list(reversed(versions)),
        replicas=list(live.replicas) if live is not None else [],
        rollback_to=_rollback_target(deployment, versions),
        loadtests=recent_loadtests(ctx.meta, name),
        **_polling(ctx, request),
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
    "ServiceView",
    "deployment_page",
    "deployments_json",
    "deployments_page",
    "history_json",
]
