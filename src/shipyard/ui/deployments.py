"""The deployments pages: each active service with its current version and replicas, and
one service's version history. Inside the host the replica states are the live ones; the
UI alone (``shipyard ui``) shows the desired state kept in the metadata database."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from shipyard.serve.deployments import Deployment, DeploymentStore
from shipyard.ui.context import PageNotFound, UIContext


@dataclass(frozen=True)
class ServiceView:
    """One row of the deployments page."""

    deployment: Deployment
    ready: int | None  # ready replicas on this host; None outside the host
    starting: int | None
    endpoints: list[str]


def _view(ctx: UIContext, deployment: Deployment) -> ServiceView:
    host = ctx.host
    if host is None:
        return ServiceView(deployment, None, None, [])
    group = host.supervisor.services.get(deployment.service)
    if group is None:
        return ServiceView(deployment, 0, 0, [])
    ready = group.ready_count
    return ServiceView(deployment, ready, len(group.replicas) - ready, sorted(group.endpoints))


def _store(ctx: UIContext) -> DeploymentStore:
    return ctx.host.admin.store if ctx.host is not None else DeploymentStore(ctx.meta)


def deployments_page(ctx: UIContext, request: Request) -> Response:
    services = [_view(ctx, d) for d in _store(ctx).active()]
    return ctx.render(
        request, "deployments.html", title="Deployments", nav="deployments", services=services
    )


def deployment_page(ctx: UIContext, request: Request) -> Response:
    name = request.path_params["service"]
    store = _store(ctx)
    deployment = store.get(name)
    if deployment is None:
        raise PageNotFound(f"no service named {name!r} was ever deployed")
    live = []
    if ctx.host is not None:
        group = ctx.host.supervisor.services.get(name)
        live = list(group.replicas) if group is not None else []
    return ctx.render(
        request,
        "deployment.html",
        title=f"Service {name}",
        nav="deployments",
        service=_view(ctx, deployment),
        versions=list(reversed(store.versions(name))),
        replicas=live,
    )


__all__ = ["ServiceView", "deployment_page", "deployments_page"]
