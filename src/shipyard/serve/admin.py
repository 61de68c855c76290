"""The admin API under ``/api/v1``: deploy, scale, roll back, undeploy, list, move a model
alias — the same operations the ``shipyard`` commands call. Every request needs the admin
token and passes the key system's Host/Origin/content-type checks, so a web page cannot deploy
code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from shipyard.serve.deployments import DeploymentStore, DeploymentVersion, VersionStatus
from shipyard.serve.errors import error_body, error_response
from shipyard.serve.replica import LoadFailed
from shipyard.serve.supervisor import VersionSpec

if TYPE_CHECKING:
    from shipyard.serve.host import Host

log = logging.getLogger("shipyard.serve")
MAX_CODE = 32 << 20


class AdminError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class AdminAPI:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.store = DeploymentStore(host.meta)
        self._locks: dict[str, asyncio.Lock] = {}
        self._invoke_cache: dict[tuple[Any, ...], tuple[float, tuple[int, bytes] | None]] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/deployments", self._guard(self.list_deployments), methods=["GET"]),
            Route("/deployments", self._guard(self.deploy), methods=["POST"]),
            Route("/deployments/{name}", self._guard(self.get_deployment), methods=["GET"]),
            Route("/deployments/{name}", self._guard(self.undeploy), methods=["DELETE"]),
            Route("/deployments/{name}/scale", self._guard(self.scale), methods=["POST"]),
            Route("/deployments/{name}/rollback", self._guard(self.rollback), methods=["POST"]),
            Route("/models/{name}/aliases/{alias}", self._guard(self.move_alias), methods=["POST"]),
        ]

    # -- auth -----------------------------------------------------------------------------
    def _guard(self, handler: Any) -> Any:
        async def guarded(request: Request) -> Response:
            from shipyard.keys import AuthError

            try:
                self.host.guard.check_admin(request)
                response: Response = await handler(request)
                return response
            except AuthError as exc:
                return JSONResponse(exc.body, exc.status, headers=exc.headers)
            except AdminError as exc:
                return error_response(exc.status, exc.kind, exc.message)

        guarded.__name__ = handler.__name__
        return guarded

    def check_invoke(self, scope: Scope, service: str) -> tuple[int, bytes] | None:
        """None if the call may go on, else (status, error body).

        The answer depends only on the client's address, the Host, Origin and Authorization
        headers and whether invoke keys exist, so it is remembered for a second per such
        tuple: the request path pays a dict lookup, not a guard evaluation. (The key store
        itself caches verifications for 5 s, so a revocation takes effect as it did.)"""
        from shipyard.keys import AuthError

        wanted = {b"host": b"", b"origin": b"", b"authorization": b""}
        for name, value in scope["headers"]:
            if name in wanted:
                wanted[name] = value
        client = scope.get("client")
        now = time.monotonic()
        ident = (service, client[0] if client else "", *wanted.values())
        cached = self._invoke_cache.get(ident)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            self.host.guard.check_invoke(Request(scope), service, not self.host.calls_open())
            answer: tuple[int, bytes] | None = None
        except AuthError as exc:
            answer = exc.status, json.dumps(exc.body).encode()
        if len(self._invoke_cache) > 4096:
            self._invoke_cache.clear()
        self._invoke_cache[ident] = (now + 1.0, answer)
        return answer

    # -- reads ----------------------------------------------------------------------------
    def _describe(self, service: str) -> dict[str, Any]:
        deployment = self.store.get(service)
        group = self.host.supervisor.services.get(service)
        replicas = [
            {
                "number": r.number,
                "pid": r.pid,
                "ready": r.ready,
                "in_flight": len(r.in_flight),
                "served": r.served,
            }
            for r in (group.replicas if group else [])
        ]
        return {
            "service": service,
            "active": bool(deployment and deployment.active),
            "current_version": deployment.current_version if deployment else None,
            "replicas": deployment.replicas if deployment else 0,
            "live": replicas,
            "endpoints": sorted(group.endpoints) if group else [],
            "versions": [v.to_json() for v in self.store.versions(service)],
        }

    async def list_deployments(self, request: Request) -> Response:
        return JSONResponse(
            {"deployments": [self._describe(d.service) for d in self.store.active()]}
        )

    async def get_deployment(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.store.get(name) is None:
            raise AdminError(404, "not_found", f"no deployment named {name!r}")
        return JSONResponse(self._describe(name))

    # -- writes ---------------------------------------------------------------------------
    async def _json(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise AdminError(400, "invalid_json", "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise AdminError(422, "validation_error", "the request body must be a JSON object")
        return body

    async def deploy(self, request: Request) -> Response:
        from shipyard.serve.host import valid_service_name

        body = await self._json(request)
        name = _field(body, "name", str)
        problem = valid_service_name(name)
        if problem:
            raise AdminError(422, "validation_error", problem)
        entry = _field(body, "entry", str)
        if ":" not in entry or not entry.split(":", 1)[0].endswith(".py"):
            raise AdminError(
                422, "validation_error", f"entry {entry!r} must look like service.py:ClassName"
            )
        replicas = _field(body, "replicas", int, default=1)
        if not 1 <= replicas <= 64:
            raise AdminError(422, "validation_error", "replicas must be between 1 and 64")
        env = _field(body, "env", dict, default={})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise AdminError(422, "validation_error", "env must map names to strings")
        try:
            code = base64.b64decode(_field(body, "code", str), validate=True)
        except binascii.Error:
            raise AdminError(422, "validation_error", "code must be base64") from None
        if len(code) > MAX_CODE:
            raise AdminError(
                413, "payload_too_large", f"the code snapshot exceeds {MAX_CODE} bytes"
            )
        return await self.deploy_code(
            name,
            entry,
            code,
            replicas=replicas,
            env=env,
            models=_field(body, "models", list, default=[]),
            user=_field(body, "user", str, default="unknown"),
        )

    async def deploy_code(
        self,
        name: str,
        entry: str,
        code: bytes,
        *,
        replicas: int = 1,
        env: dict[str, str] | None = None,
        models: list[Any] | None = None,
        user: str = "unknown",
    ) -> Response:
        """Record a new version of ``name`` from a code snapshot and roll it out."""
        pins = self._resolve_models(models or [])
        code_key = hashlib.sha256(code).hexdigest()
        self.host.blobs.put(code_key, [code])
        version = self.store.add_version(
            name,
            entry=entry,
            code_key=code_key,
            replicas=replicas,
            env=env or {},
            pins=pins,
            created_by=user,
        )
        return await self._roll_out(version, action="deploy")

    def _resolve_models(self, specs: list[Any]) -> dict[str, str]:
        if not specs:
            return {}
        try:
            from shipyard.registry import Model
        except ImportError:  # pragma: no cover - the registry ships with shipyard
            raise AdminError(422, "validation_error", "no model registry available") from None
        pins = {}
        for spec in specs:
            if not isinstance(spec, str):
                raise AdminError(422, "validation_error", f"model {spec!r} must be a string")
            try:
                pins[spec] = Model(spec).resolve()
            except Exception as exc:  # noqa: BLE001 - the registry's own error names the model
                raise AdminError(422, "model_not_found", str(exc)) from None
        return pins

    def _audit(self, action: str, service: str, user: str, **detail: Any) -> None:
        """Deploys, rollbacks, scales and undeploys go to the same audit log as alias moves."""
        from shipyard.registry import Registry

        Registry(self.host.meta).log_event(
            action, model=None, detail={"service": service, **detail}, user=user
        )

    async def _roll_out(self, version: DeploymentVersion, *, action: str) -> Response:
        from shipyard.store.code import extract_code

        lock = self._locks.setdefault(version.service, asyncio.Lock())
        async with lock:
            code_dir = extract_code(
                self.host.blobs.get(version.code_key), version.code_key, self.host.config.home
            )
            spec = VersionSpec(
                service=version.service,
                version=version.version,
                entry=version.entry,
                code_dir=code_dir,
                replicas=version.replicas,
                env=version.env,
                pins=version.pins,
            )
            try:
                group = await self.host.supervisor.deploy(spec, progress=log.info)
            except LoadFailed as exc:
                self.store.mark(version.service, version.version, VersionStatus.FAILED, exc.reason)
                raise AdminError(
                    422,
                    "load_failed",
                    f"{version.service} v{version.version} did not start: "
                    f"{exc.reason}; the previous version keeps serving",
                ) from None
            pins = {**group.models, **version.pins}
            previous = self.store.get(version.service)
            self.store.mark(version.service, version.version, VersionStatus.LIVE, pins=pins)
            if action != "restore":
                self._audit(
                    action,
                    version.service,
                    version.created_by,
                    version=version.version,
                    previous=previous.current_version if previous else None,
                    pins=pins,
                )
        return JSONResponse(self._describe(version.service))

    async def scale(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await self._json(request)
        replicas = _field(body, "replicas", int)
        if not 1 <= replicas <= 64:
            raise AdminError(422, "validation_error", "replicas must be between 1 and 64")
        if name not in self.host.supervisor.services:
            raise AdminError(404, "not_found", f"no live deployment named {name!r}")
        async with self._locks.setdefault(name, asyncio.Lock()):
            try:
                await self.host.supervisor.scale(name, replicas)
            except LoadFailed as exc:
                raise AdminError(422, "load_failed", exc.reason) from None
            self.store.set_replicas(name, replicas)
        self._audit("scale", name, _user(request), replicas=replicas)
        return JSONResponse(self._describe(name))

    async def rollback(self, request: Request) -> Response:
        name = request.path_params["name"]
        deployment = self.store.get(name)
        if deployment is None or deployment.current_version is None:
            raise AdminError(404, "not_found", f"no deployment named {name!r}")
        earlier = [
            v
            for v in self.store.versions(name)
            if v.version < deployment.current_version
            and v.status in (VersionStatus.RETIRED, VersionStatus.LIVE)
        ]
        if not earlier:
            raise AdminError(
                409,
                "no_previous_version",
                f"{name} v{deployment.current_version} has no earlier live version",
            )
        target = earlier[-1]
        # a rollback is a new version with the old snapshot and pins, so history stays linear
        version = self.store.add_version(
            name,
            entry=target.entry,
            code_key=target.code_key,
            replicas=deployment.replicas,
            env=target.env,
            pins=target.pins,
            created_by=_user(request),
        )
        return await self._roll_out(version, action="rollback")

    async def move_alias(self, request: Request) -> Response:
        """``POST /models/{name}/aliases/{alias}`` ``{"version": N}``: point the alias at that
        version (created or moved; audited as the caller, like ``shipyard models alias``)."""
        from starlette.concurrency import run_in_threadpool

        from shipyard.registry import ModelNotFound, ModelSpecError, Registry

        name, alias = request.path_params["name"], request.path_params["alias"]
        version = _field(await self._json(request), "version", int)
        registry = Registry(self.host.meta, blobs=self.host.blobs, home=self.host.config.home)
        try:
            before = await run_in_threadpool(
                registry.set_alias, name, version, alias, user=_user(request)
            )
        except ModelSpecError as exc:
            raise AdminError(422, "validation_error", str(exc)) from None
        except ModelNotFound as exc:
            raise AdminError(404, "not_found", str(exc)) from None
        return JSONResponse({"model": name, "alias": alias, "version": version, "previous": before})

    async def undeploy(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.store.get(name) is None:
            raise AdminError(404, "not_found", f"no deployment named {name!r}")
        async with self._locks.setdefault(name, asyncio.Lock()):
            await self.host.supervisor.undeploy(name)
            self.store.deactivate(name)
        self._audit("undeploy", name, _user(request))
        return JSONResponse({"service": name, "active": False})

    # -- start-up -------------------------------------------------------------------------
    async def restore(self) -> None:
        """Bring back every active deployment at its current version (host restart)."""
        for deployment in self.store.active():
            version = (
                self.store.version(deployment.service, deployment.current_version)
                if deployment.current_version
                else None
            )
            if version is None:
                continue
            try:
                await self._roll_out(_with_replicas(version, deployment.replicas), action="restore")
            except AdminError as exc:
                log.error("could not restore %s: %s", deployment.service, exc.message)


def _with_replicas(version: DeploymentVersion, replicas: int) -> DeploymentVersion:
    from dataclasses import replace

    return replace(version, replicas=replicas)


def _user(request: Request) -> str:
    """Who asked: the user the CLI says it runs as, else the key's label."""
    return request.headers.get("x-shipyard-user") or "admin"


_MISSING: Any = object()


def _field(body: dict[str, Any], name: str, kind: type, default: Any = _MISSING) -> Any:
    if name not in body:
        if default is _MISSING:
            raise AdminError(422, "validation_error", f"missing field {name!r}")
        return default
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise AdminError(
            422,
            "validation_error",
            f"field {name!r} must be {kind.__name__}, got {type(value).__name__}",
        )
    return value


__all__ = ["AdminAPI", "AdminError", "error_body"]
