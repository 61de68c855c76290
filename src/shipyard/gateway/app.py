"""The gateway: an ASGI app serving the routes of one configuration file.

A :class:`Gateway` is an ASGI app with its own lifespan (the file watcher and SIGHUP reload
start with it; its upstream pools close with it). Standalone (``shipyard gateway``) it serves
``/v1/...``, ``/gateway/...``, ``/healthz`` and ``/metrics``; inside the host
(``shipyard serve --gateway-config``) the host mounts it at ``/v1`` and ``/gateway``, runs
its lifespan inside the host's, and it answers those paths exactly as it does alone.

>>> gateway = Gateway("gateway.yaml", guard=Guard(KeyStore(meta)))   # doctest: +SKIP
>>> uvicorn.run(gateway, host="127.0.0.1", port=8001)                # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from starlette import routing
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from shipyard.errors import error_response
from shipyard.gateway.admission import default_admission
from shipyard.gateway.config import load_config
from shipyard.gateway.errors import ConfigError, openai_error
from shipyard.gateway.hooks import Admission
from shipyard.gateway.metrics import GatewayMetrics
from shipyard.gateway.model import GatewayConfig, RouteType
from shipyard.gateway.proxy import MAX_BODY, Proxy
from shipyard.gateway.reload import Reloader
from shipyard.gateway.routes import RouteTable
from shipyard.gateway.scrubbing import Scrubber
from shipyard.gateway.transport import Transport, TransportFactory
from shipyard.keys import AuthError

if TYPE_CHECKING:
    from shipyard.keys import Guard
    from shipyard.store.meta import MetaStore

log = logging.getLogger("shipyard.gateway")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class Gateway:
    """The routes of ``config`` (a YAML path), behind ``guard``'s key checks.

    Raises :class:`~shipyard.gateway.errors.ConfigError` if the file is invalid at start.
    ``admission`` defaults to :func:`~shipyard.gateway.admission.default_admission` (``meta``,
    this gateway's metrics registry); ``host_url`` is the host's URL for ``service`` routes;
    ``transport`` makes the transport of each upstream origin
    (:mod:`shipyard.gateway.transport`; default: a keep-alive connection pool).
    """

    def __init__(
        self,
        config: str | os.PathLike[str],
        *,
        guard: Guard,
        admission: Admission | None = None,
        meta: MetaStore | None = None,
        host_url: str | None = None,
        registry: CollectorRegistry | None = None,
        max_body: int = MAX_BODY,
        watch: bool = True,
        debounce_ms: int = 200,
        transport: TransportFactory | None = None,
    ) -> None:
        self.path = Path(config)
        self.host_url = host_url
        self.guard = guard
        self.max_body = max_body
        self.watch = watch
        self.metrics = GatewayMetrics(registry)
        self.admission = admission or default_admission(meta, self.metrics.registry)
        self.table = RouteTable.build(
            load_config(self.path, host_url=host_url), transport=transport
        )
        self.metrics.routes.set(len(self.table.routes))
        self.last_error: str | None = None
        self._secrets: set[str] = set()
        self.scrubber = Scrubber()
        self._remember_secrets(self.table.config)
        self._retired: set[RouteTable] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self.proxy = Proxy(
            guard=guard,
            admission=self.admission,
            metrics=self.metrics,
            table=lambda: self.table,
            scrubber=lambda: self.scrubber,
            max_body=max_body,
        )
        self.reloader = Reloader(self.path, self.reload, debounce_ms=debounce_ms)
        self.starlette = Starlette(
            routes=[
                routing.Route("/healthz", self.healthz),
                routing.Route("/metrics", self.metrics_endpoint),
                *self._routes(),
            ],
            lifespan=self._lifespan,
            exception_handlers={HTTPException: _not_routed},
        )
        #: POSTs to these exact paths skip Starlette's middleware and router (tens of
        #: microseconds a request); everything else, errors and 405s included, goes through it
        self._direct = {
            "/v1/chat/completions": RouteType.CHAT,
            "/v1/completions": RouteType.COMPLETIONS,
            "/v1/embeddings": RouteType.EMBEDDINGS,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call, lifespan included.

        Mounted (the host mounts it at ``/v1`` and at ``/gateway``), it routes on the path
        below the app's root, not below the mount: its routes read ``/v1/...`` and
        ``/gateway/...`` alone and mounted alike, and its direct POST paths stay direct."""
        if "app_root_path" in scope:  # set by Starlette's Mount: the app's own root
            scope = {**scope, "root_path": scope["app_root_path"]}
        await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call: the routes, ``/healthz`` and ``/metrics``."""
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            kind = self._direct.get(scope["path"])
            if kind is not None:
                response = await self.proxy.openai(Request(scope, receive), kind)
                await response(scope, receive, send)
                return
        await self.starlette(scope, receive, send)

    def _routes(self) -> list[routing.BaseRoute]:
        """``/v1/...`` (the OpenAI surface) and ``/gateway/{route}/...``."""
        p = self.proxy
        return [
            routing.Mount(
                "/v1",
                routes=[
                    routing.Route(
                        "/chat/completions", p.openai_endpoint(RouteType.CHAT), methods=["POST"]
                    ),
                    routing.Route(
                        "/completions", p.openai_endpoint(RouteType.COMPLETIONS), methods=["POST"]
                    ),
                    routing.Route(
                        "/embeddings", p.openai_endpoint(RouteType.EMBEDDINGS), methods=["POST"]
                    ),
                    routing.Route("/models", p.models, methods=["GET"]),
                    routing.Route("/{rest:path}", _openai_unknown, methods=_METHODS),
                ],
            ),
            routing.Mount(
                "/gateway",
                routes=[
                    routing.Route("/{route}/{path:path}", p.passthrough, methods=_METHODS),
                    routing.Route("/{route}", p.passthrough, methods=_METHODS),
                ],
            ),
        ]

    # -- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the file watcher and the SIGHUP handler."""
        await self.reloader.start(watch=self.watch)
        log.info("gateway: %d route(s) from %s", len(self.table.routes), self.path)

    async def close(self) -> None:
        """Stop reloading; close every upstream transport and the accounting."""
        await self.reloader.stop()
        pools = {id(p): p for t in (self.table, *self._retired) for p in t.transports.values()}
        for pool in pools.values():
            await pool.aclose()
        for task in list(self._closing):
            with contextlib.suppress(BaseException):
                await task
        close = getattr(self.admission, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.close()

    # -- reload -----------------------------------------------------------------------------
    async def reload(self, reason: str = "reload") -> bool:
        """Re-read the file and swap the route table; False (old routes kept) if invalid."""
        async with self._lock:
            try:
                config = await asyncio.to_thread(load_config, self.path, host_url=self.host_url)
            except ConfigError as exc:
                self.last_error = str(exc)
                self.metrics.reloads.labels("refused").inc()
                log.error(
                    "gateway configuration NOT reloaded (%s), the previous routes keep serving: %s",
                    reason,
                    exc,
                )
                return False
            self.swap(config)
            self.last_error = None
            self.metrics.reloads.labels("applied").inc()
            log.info("gateway configuration reloaded (%s): %d route(s)", reason, len(config.routes))
            return True

    def swap(self, config: GatewayConfig) -> None:
        """Serve ``config`` from now on; requests in flight keep their table."""
        self._remember_secrets(config)
        new = RouteTable.build(config, self.table)
        old, self.table = self.table, new
        self.metrics.routes.set(len(new.routes))
        self._retired.add(old)
        old.retire(self._drained)

    def _drained(self, old: RouteTable) -> None:
        self._retired.discard(old)
        used = {id(p) for t in (self.table, *self._retired) for p in t.transports.values()}
        for pool in old.transports.values():
            if id(pool) not in used:
                self._close_later(pool)

    def _close_later(self, pool: Transport) -> None:
        task = asyncio.ensure_future(pool.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _remember_secrets(self, config: GatewayConfig) -> None:
        # every credential ever loaded stays scrubbed: an answer of a route that a reload
        # removed may still be streaming; the forms are computed here, once per load
        known = len(self._secrets)
        for route in config.routes.values():
            if route.upstream.api_key:
                self._secrets.add(route.upstream.api_key)
        if len(self._secrets) != known:
            self.scrubber = Scrubber(self._secrets)

    def secrets(self) -> frozenset[bytes]:
        """Every upstream credential loaded so far (scrubbed from every upstream answer)."""
        return frozenset(s.encode() for s in self._secrets)

    # -- small routes -----------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "routes": len(self.table.routes)})

    async def metrics_endpoint(self, request: Request) -> Response:
        # route names and spend: not for a DNS-rebinding page (the admin API's Host checks)
        try:
            self.guard.check_host(request)
        except AuthError as exc:
            return exc.response()
        return Response(
            self.render_metrics(include_default=True), media_type="text/plain; version=0.0.4"
        )

    def render_metrics(self, *, include_default: bool = False) -> bytes:
        """This gateway's metrics (and the default registry's, for the standalone gateway)."""
        text = self.metrics.render()
        if include_default and self.metrics.registry is not REGISTRY:
            text += generate_latest(REGISTRY)
        return text


async def _not_routed(request: Request, exc: Exception) -> Response:
    # what the host answers for a path no route takes, so that a mounted gateway answers
    # alike: {"error": {"type": "not_found" | "method_not_allowed", ...}}
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"no route for {request.method} {request.url.path}"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, kind, message, headers=headers)


async def _openai_unknown(request: Request) -> Response:
    return openai_error(
        404,
        f"no such endpoint: {request.method} {request.url.path} (the "
        "gateway serves /v1/chat/completions, /v1/completions, /v1/embeddings "
        "and /v1/models)",
        code="unknown_url",
    )


def describe(config: GatewayConfig) -> str:
    """One line per route, without credentials (for start-up logs and the CLI)."""
    lines = []
    for route in config.routes.values():
        up = route.upstream
        target = up.service or up.base_url
        if up.service and up.endpoint:
            target += f"/{up.endpoint}"
        model = f" model={up.model}" if up.model else ""
        fallback = f" fallback={','.join(route.fallback)}" if route.fallback else ""
        lines.append(f"  {route.name}: {route.type} -> {up.provider} {target}{model}{fallback}")
    return "\n".join(lines) or json.dumps([])


__all__ = ["Gateway", "describe"]
