"""The models pages: every registered model with its latest version and aliases, and one
model's versions side by side (metrics as columns, aliases, lineage to the producing task),
the deployments that pinned it through an alias (and whether they still serve the version
the alias points at: a deployment resolves an alias once, when deployed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from shipyard.registry import ModelNotFound, ModelSpecError, ModelVersion, Registry
from shipyard.serve.deployments import DeploymentStore
from shipyard.ui.context import PageNotFound, UIContext

AUDIT_LINES = 20


def _registry(ctx: UIContext) -> Registry:
    return Registry(ctx.meta, blobs=ctx.blobs, home=ctx.home)


def models_page(ctx: UIContext, request: Request) -> Response:
    return ctx.render(
        request, "models.html", title="Models", nav="models", models=_registry(ctx).list_models()
    )


def model_page(ctx: UIContext, request: Request) -> Response:
    name = request.path_params["name"]
    registry = _registry(ctx)
    try:
        versions = registry.versions(name)
        audit = registry.audit(name, limit=AUDIT_LINES)
    except (ModelNotFound, ModelSpecError) as exc:
        raise PageNotFound(f"model {name!r} does not exist: {exc}") from None
    served = _served(ctx, name, versions)
    metrics = sorted({m for v in versions for m in v.metrics})
    best = {
        m: max((v.metrics[m] for v in versions if m in v.metrics), default=None) for m in metrics
    }
    return ctx.render(
        request,
        "model.html",
        title=f"Model {name}",
        nav="models",
        name=name,
        versions=list(reversed(versions)),  # newest first
        metrics=metrics,
        best=best,
        audit=audit,
        served=served,
    )


def _served(ctx: UIContext, name: str, versions: list[ModelVersion]) -> list[dict[str, object]]:
    """The active deployments that pinned ``name`` through one of its aliases."""
    aliases = {alias: v.version for v in versions for alias in v.aliases}
    store = DeploymentStore(ctx.meta)
    rows: list[dict[str, object]] = []
    for alias, points_at in sorted(aliases.items()):
        for service, deployed, pinned in store.pinned_through(name, alias):
            rows.append(
                {
                    "service": service,
                    "deployment_version": deployed,
                    "alias": alias,
                    "serves": pinned,
                    "points_at": points_at,
                    "stale": pinned != f"{name}:{points_at}",
                }
            )
    return rows


__all__ = ["model_page", "models_page"]
