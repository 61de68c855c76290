"""The gateway page: the routes the host's gateway serves (when it runs one) and usage per
route and key over the last hour or day, summed in SQL from ``gateway_usage``.

No secret is ever shown: a route shows its type, provider, upstream origin (scheme, host and
port only: no path, query or user info, which could carry a credential), model, limits and
fallbacks, never ``api_key``; a key shows its ``sy_<prefix>`` label, which is not a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from shipyard.ui.context import PageError, UIContext

#: the ``period`` choices of the usage table
PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class RouteView:
    """One route as the page shows it: only what is safe to show."""

    name: str
    type: str
    provider: str
    upstream: str  # scheme://host:port, or "service NAME"
    model: str | None
    limits: dict[str, Any]
    fallback: tuple[str, ...]
    timeout: float


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: never its user info, path or query."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    if not parts.hostname:
        return "(no host)"
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def route_views(ctx: UIContext) -> list[RouteView] | None:
    """The gateway's routes, or None when no gateway is mounted here. (A route table is
    immutable, and a reload swaps the whole table: reading it from a page's thread is safe.)"""
    if ctx.gateway is None:
        return None
    views = []
    for route in ctx.gateway.table.routes.values():
        up = route.upstream
        views.append(
            RouteView(
                name=route.name,
                type=str(route.type),
                provider=str(up.provider),
                upstream=f"service {up.service}" if up.service else origin(up.base_url),
                model=up.model,
                limits=dict(route.limits),
                fallback=tuple(route.fallback),
                timeout=route.timeout,
            )
        )
    return sorted(views, key=lambda v: v.name)


def gateway_page(ctx: UIContext, request: Request) -> Response:
    from shipyard.gateway.usage import query_usage

    period = request.query_params.get("period") or "hour"
    if period not in PERIODS:
        raise PageError(f"period {period!r} is not one of {', '.join(PERIODS)}")
    since = datetime.now(UTC) - PERIODS[period]
    usage = query_usage(ctx.meta.engine, since=since)
    return ctx.render(
        request,
        "gateway.html",
        title="Gateway",
        nav="gateway",
        routes=route_views(ctx),
        usage=usage,
        period=period,
        periods=list(PERIODS),
        since=since,
    )


__all__ = ["PERIODS", "RouteView", "gateway_page", "origin", "route_views"]
