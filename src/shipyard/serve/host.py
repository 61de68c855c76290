"""The host: one ASGI app in front of every deployed service.

Routes (see DESIGN.md): ``POST /{service}/{endpoint}``, ``GET /{service}/openapi.json`` and
``/{service}/docs``, ``GET /`` (the services: JSON, or a page for a browser) and
``/openapi.json`` (every service in one document, :mod:`shipyard.serve.index`), the admin API
under ``/api/v1`` (and ``POST /api/v1/events`` for ``events:publish`` keys,
:mod:`shipyard.serve.events`), ``/metrics``, ``/healthz``, ``/readyz``; the gateway's ``/v1`` and
``/gateway`` when it is given one, and whatever else is mounted (the UI at ``/ui``) under the
host's reserved names (:data:`shipyard.names.RESERVED`).

``POST /{service}/{endpoint}`` is answered before the route table is consulted
(:class:`~shipyard.serve.invoke.Invoker`): a service call pays a string split, not routing.

What the host tells without a key — ``/metrics``, ``/``, the ``openapi.json`` documents and
``docs`` pages, ``/readyz``'s detail — it tells only to requests whose Host (and Origin, if
sent) names this host (:meth:`Guard.check_host <shipyard.keys.Guard.check_host>`: loopback
names, the bind address, the address the connection arrived on, ``allowed_hosts``), so a
DNS-rebinding page in a browser cannot read them; others get the admin API's 403.
``/healthz`` (``ok``, nothing else) and ``/readyz``'s status code answer any Host: load
balancers probe with whatever Host they like, and one bit of readiness tells an attacker
nothing. Service calls keep their own checks (:meth:`Guard.invoke_refusal`): no added work on
the hot path.

The host is built from its collaborators, as a Starlette app is, and
:meth:`Host.from_settings` opens them from the settings; what the host mounts runs its own
lifespan inside the host's::

    host = Host.from_settings(bind="127.0.0.1", port=8000)
    host.mount("/ui", make_ui(host.meta, host.blobs, host.guard, live=host))
    uvicorn.run(host)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from shipyard.config import Settings, settings
from shipyard.errors import error_body, error_response, new_error_id
from shipyard.names import RESERVED, service_name_problem
from shipyard.serve.admin import AdminAPI
from shipyard.serve.bodies import MAX_BODY_BUFFER
from shipyard.serve.docs import docs_page, new_nonce, page_headers
from shipyard.serve.errors import ServeError
from shipyard.serve.events import EventsAPI
from shipyard.serve.history import History, Point
from shipyard.serve.index import combined_openapi, index_page, prefers_html
from shipyard.serve.invoke import MAX_BODY, Invoker
from shipyard.serve.lifespans import lifespan
from shipyard.serve.live import ServiceState, service_state
from shipyard.serve.metrics import HostMetrics
from shipyard.serve.reconcile import INTERVAL, Reconciler
from shipyard.serve.supervisor import Supervisor

if TYPE_CHECKING:
    from shipyard.keys import Guard, KeyStore
    from shipyard.store.blobs import BlobStore
    from shipyard.store.meta import MetaStore

log = logging.getLogger("shipyard.serve")
T = TypeVar("T")


class GatewayApp(Protocol):
    """What the host needs of the gateway it mounts at ``/v1`` and ``/gateway``: an ASGI app
    with its own lifespan, and its metrics for the host's ``/metrics``
    (:class:`shipyard.gateway.Gateway` is one)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def render_metrics(self) -> bytes: ...


#: builds the gateway from the host's guard, metadata store and own URL (for service routes)
GatewayFactory = Callable[["Guard", "MetaStore", str], GatewayApp]


class Host:
    """Everything one ``shipyard serve`` process runs, as one ASGI app.

    ``meta`` and ``blobs`` keep the deployments and code snapshots, ``guard`` checks every
    request, ``supervisor`` runs the workers, ``home`` holds the admin token; ``gateway``,
    if given, is mounted at ``/v1`` and ``/gateway``. :meth:`from_settings` builds them all.
    """

    def __init__(
        self,
        *,
        meta: MetaStore,
        blobs: BlobStore,
        guard: Guard,
        supervisor: Supervisor,
        home: Path,
        gateway: GatewayApp | None = None,
        bind: str = "127.0.0.1",
        port: int = 8000,
        max_body: int = MAX_BODY,
        max_body_buffer: int = MAX_BODY_BUFFER,
        access_log: bool = False,
        reconcile_interval: float = INTERVAL,
    ) -> None:
        self.meta = meta
        self.blobs = blobs
        self.guard = guard
        self.supervisor = supervisor
        self.home = home
        self.gateway = gateway
        self.bind = bind
        self.port = port
        self.metrics = HostMetrics()
        self.history = History(self.metrics)  # the UI's charts: the last hour per service
        supervisor.on_restart = lambda s: self.metrics.restarts.labels(s).inc()
        supervisor.on_memory_kill.append(lambda s, _: self.metrics.oom_kills.labels(s).inc())
        supervisor.on_retire.append(lambda s, _: self.metrics.retirements.labels(s).inc())
        self.admin = AdminAPI(meta=meta, blobs=blobs, guard=guard, supervisor=supervisor, home=home)
        #: brings back the deployments at start, then follows the desired state every
        #: ``reconcile_interval`` seconds (what other hosts on the same database deploy)
        self.reconciler = Reconciler(self.admin, interval=reconcile_interval)
        #: ``POST /{service}/{endpoint}``; ``access_log``: one JSON line per call on stderr
        self.invoke = Invoker(
            supervisor=supervisor,
            guard=guard,
            metrics=self.metrics,
            max_body=max_body,
            max_body_buffer=max_body_buffer,
            access_log=access_log,
        )
        self.started = False
        #: coroutines started in the background once the host is up (e.g. the dev loop)
        self.on_start: list[Callable[[], Coroutine[Any, Any, None]]] = []
        #: called, last first, when the host has stopped (what :meth:`from_settings` opened)
        self.on_close: list[Callable[[], None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._mounted: list[ASGIApp] = []  # each runs its lifespan inside the host's
        self._loop: asyncio.AbstractEventLoop | None = None
        #: seconds between two looks for invoke keys while the host runs (the key store's
        #: cache lifetime), so the last one's revocation is logged when it happens
        self.keys_watch_seconds = guard.keys.cache_ttl
        # the routes that take any first path segment: mounts go before them
        self._by_service = [
            Route("/{service}/openapi.json", self.openapi, methods=["GET"]),
            Route("/{service}/docs", self.docs, methods=["GET"]),
            Route("/{service}/{endpoint}", self.invoke.endpoint(), methods=["POST"]),
        ]
        #: the route table: everything but the direct service calls of :meth:`__call__`
        self.app = Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/readyz", self.readyz),
                Route("/metrics", self.metrics_endpoint),
                Route("/", self.index, methods=["GET"]),
                Route("/openapi.json", self.openapi_all, methods=["GET"]),
                Mount(
                    "/api/v1",
                    routes=[*self.admin.routes(), *EventsAPI(meta=meta, guard=guard).routes()],
                ),
                *self._by_service,
            ],
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
            lifespan=self._lifespan,
        )
        if gateway is not None:
            self.mount("/v1", gateway)
            self.mount("/gateway", gateway)

    @classmethod
    def from_settings(
        cls,
        config: Settings | None = None,
        *,
        bind: str = "127.0.0.1",
        port: int = 8000,
        max_in_flight: int = 64,
        max_body: int = MAX_BODY,
        max_body_buffer: int = MAX_BODY_BUFFER,
        access_log: bool = False,
        gateway: GatewayFactory | None = None,
        ping_timeout: float = 5.0,
        reconcile_interval: float = INTERVAL,
    ) -> Host:
        """The host of ``config`` (default: :func:`shipyard.config.settings`): its stores
        opened from the settings (and closed when it stops), a guard for ``bind`` and the
        ``allowed_hosts``, ``max_in_flight`` requests per replica, request bodies of at most
        ``max_body`` bytes each and ``max_body_buffer`` bytes together, replicas skipped after
        ``ping_timeout`` seconds without answering a health ping, the desired state read every
        ``reconcile_interval`` seconds; ``gateway(guard, meta, host_url)`` builds the gateway
        to mount, if any."""
        from shipyard.keys import Guard, KeyStore
        from shipyard.registry import Registry
        from shipyard.store.blobs import open_blob_store
        from shipyard.store.meta import MetaStore

        config = config or settings()
        meta = MetaStore.open(config.db_url)
        keys = KeyStore(meta)
        try:
            blobs = open_blob_store(config.store_url)
            guard = Guard.for_settings(keys, config, bind_host=bind)
            here = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
            built = gateway(guard, meta, f"http://{here}:{port}") if gateway else None
            supervisor = Supervisor(
                config.home,
                config.store_url,
                max_in_flight=max_in_flight,
                config=config,
                models=Registry(meta, blobs=blobs, home=config.home),
                ping_timeout=ping_timeout,
            )
        except BaseException:
            keys.close()
            meta.close()
            raise
        host = cls(
            meta=meta,
            blobs=blobs,
            guard=guard,
            supervisor=supervisor,
            home=config.home,
            gateway=built,
            bind=bind,
            port=port,
            max_body=max_body,
            max_body_buffer=max_body_buffer,
            access_log=access_log,
            reconcile_interval=reconcile_interval,
        )
        host.on_close += [meta.close, keys.close]
        return host

    @property
    def keys(self) -> KeyStore:
        """The key store the guard checks keys against."""
        return self.guard.keys

    def mount(self, path: str, app: ASGIApp) -> None:
        """Serve ``app`` under ``path`` (``/ui``) and run its lifespan inside the host's.

        ``path`` must be one of the host's reserved names (:data:`shipyard.names.RESERVED`):
        ``POST /{name}/{endpoint}`` under any other name is a service call. Mount before the
        host starts."""
        first = path.strip("/").split("/", 1)[0]
        if first not in RESERVED:
            raise ServeError(
                f"cannot mount an app at {path!r}: the host mounts apps only under its "
                f"reserved names ({', '.join(sorted(RESERVED))}), which no service can take"
            )
        if self.started:
            raise ServeError(f"cannot mount an app at {path!r}: the host has started")
        routes = self.app.router.routes
        routes.insert(len(routes) - len(self._by_service), Mount(path, app=app))
        if all(mounted is not app for mounted in self._mounted):
            self._mounted.append(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            # the hot path, before any routing: /{service}/{endpoint}, as the table's route
            service, slash, endpoint = scope["path"][1:].partition("/")
            if service and endpoint and "/" not in endpoint and service not in RESERVED:
                try:
                    await self.invoke(scope, receive, send, service, endpoint)
                except Exception:  # the route table's 500 handler is not on this path
                    await _failed(scope, send)
                return
        await self.app(scope, receive, send)

    # -- life cycle -----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        from shipyard.keys import ensure_admin_token

        self._loop = asyncio.get_running_loop()
        try:
            ensure_admin_token(self.home, self.keys)
            if self.calls_open():
                log.warning(
                    "service calls are open to loopback clients: no invoke key exists "
                    "(create one with: shipyard keys create --scope invoke:*)"
                )
            self.supervisor.claim()  # one host per home; its predecessor's leftovers go
            async with contextlib.AsyncExitStack() as mounted:
                for each in self._mounted:
                    await mounted.enter_async_context(lifespan(each))
                # the deployments come back in the background, all at once, and the host then
                # follows the desired state (reconcile.py) and the followed aliases
                # (follow.py): /healthz answers meanwhile, /readyz says which are not back yet
                starts = [self.reconciler.run, self._watch_keys, self.admin.follower.run]
                for start in [*starts, *self.on_start]:
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
        finally:
            self._loop = None
            await self.supervisor.close()
            for close in reversed(self.on_close):
                close()

    def calls_open(self) -> bool:
        """True while no ``invoke`` key exists (the key store caches the answer ~5 s); the
        guard logs a WARNING when this turns true (the last invoke key revoked or expired)."""
        return not self.guard.keys_exist("invoke:")

    async def _watch_keys(self) -> None:
        """Look for invoke keys every :attr:`keys_watch_seconds`, so that the last one's
        revocation is logged when it happens, not at the next call (the guard logs the turn:
        :meth:`Guard.keys_exist <shipyard.keys.Guard.keys_exist>`)."""
        while True:
            await asyncio.sleep(self.keys_watch_seconds)
            try:
                self.calls_open()  # one indexed query, as a call that misses the cache pays
            except Exception:  # the database is away: the calls themselves will say so
                log.debug("could not look for invoke keys", exc_info=True)

    # -- what the UI reads (shipyard.ui.context.LiveHost): snapshots ----------------------
    def live_services(self) -> dict[str, ServiceState]:
        """Every live service now, taken on the event loop that runs them."""
        return self._on_loop(
            lambda: {name: service_state(name, g) for name, g in self.supervisor.services.items()}
        )

    def live_service(self, service: str) -> ServiceState | None:
        """One live service now (None: not live here), taken on the event loop."""

        def take() -> ServiceState | None:
            group = self.supervisor.services.get(service)
            return service_state(service, group) if group is not None else None

        return self._on_loop(take)

    def traffic(self, service: str, since: float) -> list[Point]:
        """The history's points of ``service`` since ``since`` (History has its own lock)."""
        return self.history.points(service, since=since)

    def last_sample(self) -> float | None:
        """When the history last took a sample."""
        return self.history.last_sample

    @property
    def admin_app(self) -> ASGIApp:
        """The host's route table: the admin API under ``/api/v1``, errors as JSON."""
        return self.app

    def _on_loop(self, take: Callable[[], T]) -> T:
        """``take()`` on the host's event loop, which owns the supervisor's state, and its
        answer. A UI page runs in a worker thread: it waits for the loop to run ``take``.
        On the loop itself, or before the host starts (nothing changes the state then),
        ``take`` runs here."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return take()
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            return take()

        async def taken() -> T:
            return take()

        return asyncio.run_coroutine_threadsafe(taken(), loop).result(timeout=30)

    # -- small routes ---------------------------------------------------------------------
    def _foreign(self, request: Request) -> Response | None:
        """The admin API's 403 if the request's Host or Origin does not name this host (a
        DNS-rebinding page), else None (see the module docstring)."""
        from shipyard.keys import AuthError

        try:
            self.guard.check_host(request)
        except AuthError as exc:
            return exc.response()
        return None

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """200 when every active deployment has a ready replica (and the host has started),
        else 503, to any Host; the services' detail only to this host's names. A version
        another host's development loop deployed is that host's own: not waited for here."""
        wanted = {
            deployment.service
            for deployment, version in self.admin.store.desired()
            if not version.dev or deployment.service in self.supervisor.services
        }
        services = {
            name: {"ready_replicas": group.ready_count, "version": group.spec.version}
            for name, group in self.supervisor.services.items()
        }
        missing = sorted(s for s in wanted if services.get(s, {}).get("ready_replicas", 0) == 0)
        ready = self.started and not missing
        body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
        if self._foreign(request) is None:  # the detail only for the host's own names
            body |= {
                "services": services,
                "not_ready": missing,
                "isolation": self.supervisor.isolation.to_json(),
            }
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        if (refused := self._foreign(request)) is not None:
            return refused
        for name, group in self.supervisor.services.items():
            self.metrics.in_flight.labels(name).set(group.in_flight)
            self.metrics.replicas.labels(name, "ready").set(group.ready_count)
            self.metrics.replicas.labels(name, "starting").set(
                len(group.replicas) - group.ready_count
            )
            self.metrics.unresponsive.labels(name).set(group.unresponsive_count)
        text = self.metrics.render() + _worker_metrics(self.supervisor.metrics_dir)
        if self.gateway is not None:
            text += self.gateway.render_metrics()
        return Response(text, media_type="text/plain; version=0.0.4")

    async def openapi(self, request: Request) -> Response:
        if (refused := self._foreign(request)) is not None:
            return refused
        group = self.supervisor.services.get(request.path_params["service"])
        if group is None:
            return _unknown_service(request.path_params["service"])
        return JSONResponse(group.openapi)

    async def docs(self, request: Request) -> Response:
        if (refused := self._foreign(request)) is not None:
            return refused
        name = request.path_params["service"]
        group = self.supervisor.services.get(name)
        if group is None:
            return _unknown_service(name)
        nonce = new_nonce()
        return HTMLResponse(docs_page(name, group.openapi, nonce), headers=page_headers(nonce))

    async def index(self, request: Request) -> Response:
        """The services served here: JSON, or a page when the request prefers HTML."""
        if (refused := self._foreign(request)) is not None:
            return refused
        services = []
        for name, group in sorted(self.supervisor.services.items()):
            info = group.openapi.get("info", {})
            services.append(
                {
                    "name": name,
                    "version": group.spec.version,
                    "description": (info.get("description") or "").strip().split("\n")[0],
                    "replicas": {"ready": group.ready_count, "total": len(group.replicas)},
                    "endpoints": sorted(group.endpoints),
                    "docs": f"/{name}/docs",
                    "openapi": f"/{name}/openapi.json",
                }
            )
        body = {"services": services, "openapi": "/openapi.json"}
        if prefers_html(request.headers.get("accept", "")):
            nonce = new_nonce()
            ui = any(getattr(r, "path", None) == "/ui" for r in self.app.router.routes)
            return HTMLResponse(index_page(body, nonce, ui=ui), headers=page_headers(nonce))
        return JSONResponse(body)

    async def openapi_all(self, request: Request) -> Response:
        """One OpenAPI document of every service (components named ``<service>.<name>``)."""
        if (refused := self._foreign(request)) is not None:
            return refused
        documents = {
            name: {
                **group.openapi,
                "info": {**group.openapi.get("info", {}), "version": str(group.spec.version)},
            }
            for name, group in self.supervisor.services.items()
        }
        return JSONResponse(combined_openapi(documents))


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


async def _failed(scope: Scope, send: Send) -> None:
    """A service call that failed in the host itself: logged with an error id, answered
    with a JSON 500 naming it, unless the answer had already begun (then only logged)."""
    error_id = new_error_id()
    log.exception("error %s handling POST %s", error_id, scope["path"])
    body = error_body("internal_error", "the host failed; see its logs", error_id=error_id)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    with contextlib.suppress(Exception):  # the server refuses a second start: already begun
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _internal_error(request: Request, exc: Exception) -> Response:
    error_id = new_error_id()
    log.exception("error %s handling %s %s", error_id, request.method, request.url.path)
    return error_response(500, "internal_error", "the host failed; see its logs", error_id=error_id)


#: why ``name`` cannot be a service name, or None (:func:`shipyard.names.service_name_problem`)
valid_service_name = service_name_problem

__all__ = ["GatewayApp", "GatewayFactory", "Host", "valid_service_name"]
