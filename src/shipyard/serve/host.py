"""The host: one ASGI app (Starlette) in front of every deployed service.

Routes (see DESIGN.md): ``POST /{service}/{endpoint}``, ``GET /{service}/openapi.json`` and
``/{service}/docs``, the admin API under ``/api/v1``, ``/metrics``, ``/healthz``, ``/readyz``.

The service path is a raw ASGI handler: it never parses the body (the worker does, with
validators built at load), picks the least-loaded ready replica, forwards the bytes and
streams the worker's answer back — the only work on the front is routing and bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from shipyard.config import Settings, settings
from shipyard.serve.admin import AdminAPI
from shipyard.serve.docs import docs_page
from shipyard.serve.errors import JSON, error_body, error_response, new_error_id
from shipyard.serve.history import History
from shipyard.serve.metrics import HostMetrics
from shipyard.serve.replica import ReplicaGone
from shipyard.serve.supervisor import Supervisor
from shipyard.ui import make_ui

if TYPE_CHECKING:
    from shipyard.gateway import Gateway

log = logging.getLogger("shipyard.serve")

SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
RESERVED = frozenset(
    {"api", "v1", "gateway", "ui", "metrics", "healthz", "readyz", "static", "docs"}
)
MAX_BODY = 16 << 20


class Host:
    """Everything one ``shipyard serve`` process runs. ``host.app`` is the ASGI app."""

    def __init__(
        self,
        config: Settings | None = None,
        *,
        bind: str = "127.0.0.1",
        port: int = 8000,
        max_body: int = MAX_BODY,
        max_in_flight: int = 64,
        gateway_config: str | os.PathLike[str] | None = None,
        access_log: bool = False,
    ) -> None:
        from shipyard.keys import Guard, KeyStore
        from shipyard.store.blobs import open_blob_store
        from shipyard.store.meta import MetaStore

        self.config = config or settings()
        self.bind = bind
        self.port = port
        self.max_body = max_body
        #: one JSON line per service request on stderr
        self.access_log = access_log
        self.meta = MetaStore.open(self.config.db_url)
        self.blobs = open_blob_store(self.config.store_url)
        self.keys = KeyStore(self.meta)
        self.guard = Guard(
            self.keys,
            bind_host=bind,
            allowed_hosts=tuple(self.config.extra.get("allowed_hosts") or ()),
        )
        self.metrics = HostMetrics()
        self.history = History(self.metrics)  # the UI's charts: the last hour per service
        self.supervisor = Supervisor(
            self.config.home, self.config.store_url, max_in_flight=max_in_flight
        )
        self.supervisor.on_restart = lambda s: self.metrics.restarts.labels(s).inc()
        self.admin = AdminAPI(self)
        self.started = False
        #: coroutines started in the background once the host is up (e.g. the dev loop)
        self.on_start: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._background: set[asyncio.Task[None]] = set()
        #: the gateway's routes (/v1, /gateway), mounted with ``gateway_config``
        self.gateway: Gateway | None = None
        if gateway_config is not None:
            from shipyard.gateway import Gateway

            here = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
            self.gateway = Gateway(
                gateway_config, guard=self.guard, meta=self.meta, host_url=f"http://{here}:{port}"
            )
        self.app = Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/readyz", self.readyz),
                Route("/metrics", self.metrics_endpoint),
                Mount("/api/v1", routes=self.admin.routes()),
                Mount("/ui", app=make_ui(self.meta, self.blobs, self.guard, host=self)),
                *(self.gateway.routes() if self.gateway is not None else ()),
                Route("/{service}/openapi.json", self.openapi, methods=["GET"]),
                Route("/{service}/docs", self.docs, methods=["GET"]),
                Route("/{service}/{endpoint}", _Invoke(self), methods=["POST"]),
            ],
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
            lifespan=self._lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # -- life cycle -----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        from shipyard.keys import ensure_admin_token

        ensure_admin_token(self.config.home, self.keys)
        if self.calls_open():
            log.warning(
                "service calls are open to loopback clients: no invoke key exists "
                "(create one with: shipyard keys create --scope invoke:*)"
            )
        await self.admin.restore()
        if self.gateway is not None:
            await self.gateway.start()
        for start in self.on_start:
            task = asyncio.create_task(start())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self.history.start()
        self.started = True
        try:
            yield
        finally:
            self.history.stop()
            for task in list(self._background):
                task.cancel()
            await self.supervisor.close()
            if self.gateway is not None:
                await self.gateway.close()
            self.keys.close()
            self.meta.close()

    def calls_open(self) -> bool:
        """True while no ``invoke`` key exists (the key store caches the answer ~5 s)."""
        return not self.keys.has_keys_with_scope_prefix("invoke:")

    # -- small routes ---------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        wanted = {d.service for d in self.admin.store.active()}
        services = {
            name: {"ready_replicas": group.ready_count, "version": group.spec.version}
            for name, group in self.supervisor.services.items()
        }
        missing = sorted(s for s in wanted if services.get(s, {}).get("ready_replicas", 0) == 0)
        ready = self.started and not missing
        body = {
            "status": "ready" if ready else "not ready",
            "services": services,
            "not_ready": missing,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        for name, group in self.supervisor.services.items():
            self.metrics.in_flight.labels(name).set(group.in_flight)
            self.metrics.replicas.labels(name, "ready").set(group.ready_count)
            self.metrics.replicas.labels(name, "starting").set(
                len(group.replicas) - group.ready_count
            )
        text = self.metrics.render() + _worker_metrics(self.supervisor.metrics_dir)
        if self.gateway is not None:
            text += self.gateway.render_metrics()
        return Response(text, media_type="text/plain; version=0.0.4")

    async def openapi(self, request: Request) -> Response:
        group = self.supervisor.services.get(request.path_params["service"])
        if group is None:
            return _unknown_service(request.path_params["service"])
        return JSONResponse(group.openapi)

    async def docs(self, request: Request) -> Response:
        name = request.path_params["service"]
        group = self.supervisor.services.get(name)
        if group is None:
            return _unknown_service(name)
        return HTMLResponse(docs_page(name, group.openapi))


class _Invoke:
    """``POST /{service}/{endpoint}``: the hot path, as a raw ASGI app."""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        host = self.host
        params = scope["path_params"]
        service, endpoint = params["service"], params["endpoint"]
        group = host.supervisor.services.get(service)
        if group is None:
            await _send(send, 404, error_body("not_found", f"no service named {service!r}"))
            return
        found = group.endpoints.get(endpoint)
        if found is None:
            known = sorted(group.endpoints)
            message = f"service {service!r} has no endpoint {endpoint!r}; it has {known}"
            await _send(send, 404, error_body("not_found", message))
            return
        denied = host.admin.check_invoke(scope, service)
        if denied is not None:
            await _send(send, denied[0], denied[1])
            return
        body = await _read_body(scope, receive, host.max_body)
        if body is None:
            await _send(
                send,
                413,
                error_body("payload_too_large", f"the request body exceeds {host.max_body} bytes"),
            )
            return
        index, info = found
        replica = group.pick(host.supervisor.max_in_flight)
        if replica is None:
            reason = "overloaded" if group.ready_count else "unavailable"
            host.metrics.rejected.labels(service, reason).inc()
            message = (
                f"service {service!r} is overloaded; retry shortly"
                if group.ready_count
                else f"service {service!r} has no ready replica (restarting); retry shortly"
            )
            await _send(send, 503, error_body(reason, message), retry_after=True)
            return
        future = replica.send(index, body)
        try:
            async with asyncio.timeout(info.get("timeout") or 30.0):
                frame = await future
        except TimeoutError:
            replica.forget(future)
            await host.supervisor.recycle(
                group, replica, f"a call to {endpoint!r} ran longer than {info.get('timeout')} s"
            )
            status, payload = (
                504,
                error_body(
                    "timeout", f"{service}/{endpoint} did not answer within {info.get('timeout')} s"
                ),
            )
        except ReplicaGone as exc:
            status, payload = 503, error_body("worker_crashed", exc.reason)
        else:
            status, payload = frame.code, frame.payload
            if frame.extra:
                host.metrics.endpoint(service, endpoint).batch_size.observe(frame.extra)
        await _send(send, status, payload, retry_after=status == 503)
        elapsed = time.perf_counter() - started
        counters = host.metrics.endpoint(service, endpoint)
        counters.count(status)
        counters.latency.observe(elapsed)
        if host.access_log:
            # one JSON line straight to fd 2: the logging module costs more than the request
            # routing itself; service and endpoint names are [a-z0-9_-], safe to inline
            os.write(
                2,
                (
                    f'{{"ts": {time.time():.6f}, "service": "{service}", "endpoint": "{endpoint}", '
                    f'"status": {status}, "ms": {elapsed * 1000:.3f}, "replica": {replica.number}, '
                    f'"bytes_in": {len(body)}, "bytes_out": {len(payload)}}}\n'
                ).encode(),
            )


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                if int(value) > limit:
                    return None
            except ValueError:
                return None
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_JSON_HEADERS = [(b"content-type", JSON.encode())]


async def _send(send: Send, status: int, body: bytes, *, retry_after: bool = False) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _worker_metrics(directory: Path) -> bytes:
    """What the workers recorded (prometheus_client's multiprocess files), added up."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _unknown_service(name: str) -> Response:
    return error_response(404, "not_found", f"no service named {name!r}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = (
        exc.detail
        if exc.status_code not in (404, 405)
        else (f"no route for {request.method} {request.url.path}")
    )
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, kind, str(message), headers=headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    error_id = new_error_id()
    log.exception("error %s handling %s %s", error_id, request.method, request.url.path)
    return error_response(500, "internal_error", "the host failed; see its logs", error_id=error_id)


def valid_service_name(name: str) -> str | None:
    """Why ``name`` cannot be a service name, or None if it can."""
    if not SERVICE_NAME.fullmatch(name):
        return f"service name {name!r} must match [a-z][a-z0-9-]{{0,62}}"
    if name in RESERVED:
        return f"service name {name!r} is reserved (reserved: {sorted(RESERVED)})"
    return None


__all__ = ["Host", "valid_service_name"]
