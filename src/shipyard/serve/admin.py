"""The admin API under ``/api/v1``: deploy, scale, roll back, undeploy, list, move a model
alias — the same operations the ``shipyard`` commands call. Every request needs the admin
token and passes the key system's Host/Origin/content-type checks, so a web page cannot deploy
code.

``POST /deployments`` takes a JSON object::

    {"name": "ranker", "entry": "service.py:Ranker", "code": "<base64 zip snapshot>",
     "replicas": 2, "memory": "512M", "models": ["ranker@prod"], "follow": ["ranker@prod"],
     "user": "ann",
     "env": {"LOG_LEVEL": "info"},
     "secrets": {"API_KEY": "env:RANKER_API_KEY", "DB_PASSWORD": "file:/run/secrets/db"}}

``env`` values are stored as given (for settings, not secrets); ``secrets`` maps a worker
variable to a reference the host resolves when it starts each worker (see
:mod:`shipyard.serve.secrets`): checked now, stored as the reference, the value never
stored, logged or answered. A secret that cannot be read now is a 422 ``secret_unavailable``
naming it and its reference. ``memory`` (optional; ``"512M"``, ``"2G"`` or bytes) limits each
replica (see :mod:`shipyard.serve.memory`); a replica over it is killed and restarted, which
the service's ``events`` say (``replica_memory_exceeded``). ``GET /deployments/{name}`` shows
each version's ``env`` names and ``secrets`` references, and the service's recent ``events``
(a replica that could not start, or was killed over its memory limit, and why).

``follow`` (optional) lists the ``name@alias`` specs the deployment follows from now on: each
is pinned as ``models`` are, and the host rolls the deployment when the alias moves; a
rollback pauses following (:mod:`shipyard.serve.follow`). ``GET /deployments/{name}`` shows
them under ``follows``.

``GET /services/{name}/logs`` reads the service's replica logs on this host, merged in time
order (:mod:`shipyard.serve.logs`; ``?error_id=``, ``?version=``, ``?since=10m``,
``?tail=``, ``?after=CURSOR``): what ``shipyard service logs`` shows.

``POST /deployments/{name}/loadtests`` (``{"summary": {...}, "report": "<html>", "user"}``)
keeps a ``shipyard loadtest`` run with the service's current version
(:mod:`shipyard.serve.loadtests`); 201 with the record.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.errors import error_body, error_response
from shipyard.names import service_name_problem
from shipyard.serve.deployments import DeploymentStore, DeploymentVersion, VersionStatus
from shipyard.serve.errors import ServeError
from shipyard.serve.follow import Follower, FollowError, FollowStore, parse_follow
from shipyard.serve.live import service_state
from shipyard.serve.replica import LoadFailed
from shipyard.serve.secrets import MAX_SECRETS, SecretError, check_reference, resolve_secrets
from shipyard.serve.supervisor import ServiceGroup, Supervisor, VersionSpec

if TYPE_CHECKING:
    from shipyard.keys import Guard
    from shipyard.serve.ray_deployments import RayPlacement
    from shipyard.store.blobs import BlobStore
    from shipyard.store.meta import MetaStore

log = logging.getLogger("shipyard.serve")
MAX_CODE = 32 << 20
#: how many recent events each service keeps (in memory) for ``GET /deployments/{name}``
MAX_EVENTS = 20


class AdminError(ServeError):
    """An admin API request refused on purpose: answered ``status`` with
    ``{"error": {"type": kind, "message": message}}`` (a 4xx naming the field or the fix)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class AdminAPI:
    """The admin API's routes (see the module docstring), over the host's collaborators:
    ``supervisor`` runs the workers, ``meta`` and ``blobs`` keep the desired state and the
    code snapshots (extracted under ``home``), ``guard`` checks every request."""

    def __init__(
        self,
        *,
        meta: MetaStore,
        blobs: BlobStore,
        guard: Guard,
        supervisor: Supervisor,
        home: Path,
    ) -> None:
        self.meta = meta
        self.blobs = blobs
        self.guard = guard
        self.supervisor = supervisor
        self.home = home
        self.store = DeploymentStore(meta)
        #: the aliases deployments follow (``deploy --follow``), and the loop that follows them
        self.follows = FollowStore(meta)
        self.follower = Follower(self)
        self._locks: dict[str, asyncio.Lock] = {}
        #: per service, what went wrong lately (a replica that could not start, and why)
        self.events: dict[str, deque[dict[str, Any]]] = {}
        supervisor.on_start_failed = self.replica_failed
        supervisor.on_memory_kill.append(self.replica_over_memory)
        supervisor.on_retire.append(self.replica_retired)

    def routes(self) -> list[Route]:
        """The routes, to mount at ``/api/v1``."""
        return [
            Route("/deployments", self._guard(self.list_deployments), methods=["GET"]),
            Route("/deployments", self._guard(self.deploy), methods=["POST"]),
            Route("/deployments/{name}", self._guard(self.get_deployment), methods=["GET"]),
            Route("/deployments/{name}", self._guard(self.undeploy), methods=["DELETE"]),
            Route("/deployments/{name}/scale", self._guard(self.scale), methods=["POST"]),
            Route("/deployments/{name}/rollback", self._guard(self.rollback), methods=["POST"]),
            Route("/deployments/{name}/loadtests", self._guard(self.loadtest), methods=["POST"]),
            Route("/models/{name}/aliases/{alias}", self._guard(self.move_alias), methods=["POST"]),
            Route("/services/{name}/logs", self._guard(self.service_logs), methods=["GET"]),
        ]

    # -- auth -----------------------------------------------------------------------------
    def _guard(self, handler: Any) -> Any:
        async def guarded(request: Request) -> Response:
            from shipyard.keys import AuthError

            try:
                self.guard.check_admin(request)
                response: Response = await handler(request)
                return response
            except AuthError as exc:
                return exc.response()
            except AdminError as exc:
                return error_response(exc.status, exc.kind, exc.message)

        guarded.__name__ = handler.__name__
        return guarded

    # -- reads ----------------------------------------------------------------------------
    def _describe(self, service: str) -> dict[str, Any]:
        deployment = self.store.get(service)
        group = self.supervisor.services.get(service)
        live = service_state(service, group) if group is not None else None
        return {
            "service": service,
            "active": bool(deployment and deployment.active),
            "current_version": deployment.current_version if deployment else None,
            "replicas": deployment.replicas if deployment else 0,
            "live": [r.to_json() for r in live.replicas] if live else [],
            "endpoints": list(live.endpoints) if live else [],
            "versions": [v.to_json() for v in self.store.versions(service)],
            "events": list(self.events.get(service, ())),
            "follows": [f.to_json() for f in self.follows.of(service)],
            "warnings": list(group.warnings) if group is not None else [],
        }

    def lock(self, service: str) -> asyncio.Lock:
        """The lock every change of ``service``'s deployment holds (deploy, rollback, scale,
        undeploy, a followed alias's roll)."""
        return self._locks.setdefault(service, asyncio.Lock())

    def record_event(self, service: str, event: str, reason: str) -> None:
        """Record that ``event`` happened to ``service`` (``follow_failed``: a followed
        alias's new version did not start), for ``GET /deployments/{name}``."""
        events = self.events.setdefault(service, deque(maxlen=MAX_EVENTS))
        events.append({"at": datetime.now(UTC).isoformat(), "event": event, "reason": reason})

    def replica_failed(self, service: str, reason: str) -> None:
        """Record that a replica of ``service`` could not start (``reason`` names a secret
        and its reference, or the worker's last words), for ``GET /deployments/{name}``."""
        events = self.events.setdefault(service, deque(maxlen=MAX_EVENTS))
        events.append(
            {
                "at": datetime.now(UTC).isoformat(),
                "event": "replica_start_failed",
                "reason": reason,
            }
        )

    def replica_over_memory(self, service: str, reason: str) -> None:
        """Record that a replica of ``service`` was killed over its memory limit."""
        events = self.events.setdefault(service, deque(maxlen=MAX_EVENTS))
        events.append(
            {
                "at": datetime.now(UTC).isoformat(),
                "event": "replica_memory_exceeded",
                "reason": reason,
            }
        )

    def replica_retired(self, service: str, reason: str) -> None:
        """Record that a replica of ``service`` was retired (and replaced), and why."""
        events = self.events.setdefault(service, deque(maxlen=MAX_EVENTS))
        events.append(
            {
                "at": datetime.now(UTC).isoformat(),
                "event": "replica_retired",
                "reason": reason,
            }
        )

    async def list_deployments(self, request: Request) -> Response:
        return JSONResponse(
            {"deployments": [self._describe(d.service) for d in self.store.active()]}
        )

    async def get_deployment(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.store.get(name) is None:
            raise AdminError(404, "not_found", f"no deployment named {name!r}")
        return JSONResponse(self._describe(name))

    async def service_logs(self, request: Request) -> Response:
        """``GET /services/{name}/logs``: the replicas' log lines merged in time order (see
        :mod:`shipyard.serve.logs`). Query: ``error_id``, ``version``, ``since`` (a
        duration: ``10m``), ``tail`` (default 200; with ``error_id``: all), ``after`` (the
        ``cursor`` of an earlier answer: only what was written since)."""
        from starlette.concurrency import run_in_threadpool

        from shipyard.serve.logs import MAX_TAIL, Cursor, LogsError, logs_dir, read_logs

        name = request.path_params["name"]
        query = request.query_params
        try:
            directory = logs_dir(self.home, name)
        except LogsError as exc:
            raise AdminError(404, "not_found", str(exc)) from None
        if not directory.is_dir():
            raise AdminError(
                404, "not_found", f"no logs of a service named {name!r} on this host ({directory})"
            )
        error_id = query.get("error_id") or None
        version = _int_query(query.get("version"), "version", 1, 1 << 31)
        default_tail = None if error_id or query.get("after") else 200
        tail = _int_query(query.get("tail"), "tail", 0, MAX_TAIL, default_tail)
        since = None
        if query.get("since"):
            from shipyard.durations import parse_duration

            try:
                since = time.time() - parse_duration(query["since"], what="since").total_seconds()
            except ValueError as exc:
                raise AdminError(422, "validation_error", str(exc)) from None
        try:
            after = Cursor.parse(query["after"]) if "after" in query else None
        except LogsError as exc:
            raise AdminError(422, "validation_error", str(exc)) from None
        page = await run_in_threadpool(
            read_logs,
            self.home,
            name,
            version=version,
            since=since,
            tail=tail,
            error_id=error_id,
            after=after,
        )
        return JSONResponse(
            {
                "service": name,
                "lines": [line.to_json() for line in page.lines],
                "cursor": str(page.cursor),
                "directory": str(page.directory),
                "files": page.files,
            }
        )

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
        body = await self._json(request)
        name = _field(body, "name", str)
        problem = service_name_problem(name)
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
        ray = _ray_field(body, replicas)
        memory_limit = _memory_field(body)
        env = _field(body, "env", dict, default={})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise AdminError(422, "validation_error", "env must map names to strings")
        secrets = _field(body, "secrets", dict, default={})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()):
            raise AdminError(
                422,
                "validation_error",
                'secrets must map names to references, e.g. {"API_KEY": "env:RANKER_API_KEY"}',
            )
        both = sorted(set(env) & set(secrets))
        if both:
            raise AdminError(
                422,
                "validation_error",
                f"{', '.join(both)} given both in env and in secrets; keep it in secrets",
            )
        try:
            code = base64.b64decode(_field(body, "code", str), validate=True)
        except binascii.Error:
            raise AdminError(422, "validation_error", "code must be base64") from None
        if len(code) > MAX_CODE:
            raise AdminError(
                413, "payload_too_large", f"the code snapshot exceeds {MAX_CODE} bytes"
            )
        follow = _field(body, "follow", list, default=[])
        for spec in follow:
            try:
                parse_follow(spec)
            except FollowError as exc:
                raise AdminError(422, "validation_error", str(exc)) from None
        return await self.deploy_code(
            name,
            entry,
            code,
            replicas=replicas,
            env=env,
            secrets=secrets,
            memory=memory_limit,
            models=_field(body, "models", list, default=[]),
            user=_field(body, "user", str, default="unknown"),
            follow=follow,
            ray=ray,
        )

    def _check_secrets(self, secrets: dict[str, str]) -> None:
        """Refuse malformed references (422 ``validation_error``) and, reading each one now
        and keeping nothing, those the host cannot resolve (422 ``secret_unavailable``)."""
        if len(secrets) > MAX_SECRETS:
            raise AdminError(
                422, "validation_error", f"at most {MAX_SECRETS} secrets per deployment"
            )
        try:
            for name, reference in secrets.items():
                check_reference(name, reference)
        except SecretError as exc:
            raise AdminError(422, "validation_error", str(exc)) from None
        try:
            resolve_secrets(secrets)
        except SecretError as exc:
            raise AdminError(422, "secret_unavailable", str(exc)) from None

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
        secrets: dict[str, str] | None = None,
        memory: int | None = None,
        dev: bool = False,
        follow: list[str] | None = None,
        ray: dict[str, Any] | None = None,
    ) -> Response:
        """Record a new version of ``name`` from a code snapshot and roll it out.
        ``secrets``: name -> reference, resolved at each worker's start (never stored);
        ``memory``: each replica's limit in bytes; ``dev``: the development loop's (not
        restored at the next host start); ``follow``: the ``name@alias`` specs it follows
        from now on (pinned like ``models``; see :mod:`shipyard.serve.follow`)."""
        self._check_secrets(secrets or {})
        follow = sorted(set(follow or []))
        models = [*(models or []), *(s for s in follow if s not in (models or []))]
        pins = self._resolve_models(models)
        code_key = hashlib.sha256(code).hexdigest()
        self.blobs.put(code_key, [code])
        version = self.store.add_version(
            name,
            entry=entry,
            code_key=code_key,
            replicas=replicas,
            env=env or {},
            pins=pins,
            created_by=user,
            secrets=secrets or {},
            memory=memory,
            dev=dev,
            ray=ray,
        )
        async with self.lock(name):
            live = await self.roll_out_locked(
                version, action="deploy", detail={"follow": follow} if follow else None
            )
            stopped = self.follows.replace(name, {s: live[s] for s in follow}, user)
            if stopped:
                self._audit("follow.stop", name, user, follows=stopped, version=version.version)
        return JSONResponse(self._describe(name))

    def _resolve_models(self, specs: list[Any]) -> dict[str, str]:
        """Each model spec pinned to its ``name:version`` now. A spec that names nothing is
        the caller's mistake (422); anything else (the database is down) is ours (500)."""
        if not specs:
            return {}
        from shipyard.registry import Model, ModelNotFound, ModelSpecError, Registry

        registry = Registry(self.meta, blobs=self.blobs, home=self.home)
        pins = {}
        for spec in specs:
            if not isinstance(spec, str):
                raise AdminError(422, "validation_error", f"model {spec!r} must be a string")
            try:
                pins[spec] = Model(spec, registry=registry).resolve()
            except (ModelNotFound, ModelSpecError) as exc:  # their message names the model
                raise AdminError(422, "model_not_found", str(exc)) from None
        return pins

    def _audit(self, action: str, service: str, user: str, **detail: Any) -> None:
        """Deploys, rollbacks, scales and undeploys go to the same audit log as alias moves."""
        from shipyard.registry import Registry

        Registry(self.meta).log_event(
            action, model=None, detail={"service": service, **detail}, user=user
        )

    async def _roll_out(self, version: DeploymentVersion, *, action: str) -> Response:
        async with self.lock(version.service):
            await self.roll_out_locked(version, action=action)
        return JSONResponse(self._describe(version.service))

    async def start_version(self, version: DeploymentVersion) -> ServiceGroup:
        """Run ``version`` on this host: its replicas started, traffic switched to them when
        all are ready, the version before drained. Writes nothing to the desired state; the
        caller holds :meth:`lock`. Raises :class:`LoadFailed` (the version before keeps
        serving)."""
        from shipyard.store.code import extract_code

        code_dir = extract_code(self.blobs.get(version.code_key), version.code_key, self.home)
        spec = VersionSpec(
            service=version.service,
            version=version.version,
            entry=version.entry,
            code_dir=code_dir,
            replicas=version.replicas,
            env=version.env,
            pins=version.pins,
            secrets=version.secrets,
            memory=version.memory,
            dev=version.dev,
            ray=_placement(version.ray),
        )
        return await self.supervisor.deploy(spec, progress=log.info)

    async def roll_out_locked(
        self, version: DeploymentVersion, *, action: str, detail: dict[str, Any] | None = None
    ) -> dict[str, str]:
        """Roll ``version`` out here (the caller holds :meth:`lock`), record it as the
        service's current version once every replica is ready (the other hosts follow it:
        :mod:`shipyard.serve.reconcile`) and audit it as ``action`` with ``detail``; returns
        the pins it went live with. Raises :class:`AdminError` (``load_failed``: the version
        is marked failed, reaches no other host, and the previous one keeps serving)."""
        try:
            group = await self.start_version(version)
        except LoadFailed as exc:
            self.store.mark(version.service, version.version, VersionStatus.FAILED, exc.reason)
            raise AdminError(
                422,
                "load_failed",
                f"{version.service} v{version.version} did not start: "
                f"{exc.reason}; the previous version keeps serving",
            ) from None
        pins = {**group.models, **version.pins}
        for warning in group.warnings:
            log.warning("%s v%s: %s", version.service, version.version, warning)
        previous = self.store.get(version.service)
        self.store.mark(version.service, version.version, VersionStatus.LIVE, pins=pins)
        self._audit(
            action,
            version.service,
            version.created_by,
            version=version.version,
            previous=previous.current_version if previous else None,
            pins=pins,
            # who had the host read which variable or file (references only)
            **({"secrets": version.secrets} if version.secrets else {}),
            **(detail or {}),
        )
        return pins

    async def scale(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await self._json(request)
        replicas = _field(body, "replicas", int)
        group = self.supervisor.services.get(name)
        if group is None:
            raise AdminError(404, "not_found", f"no live deployment named {name!r}")
        on_ray = group.spec.ray is not None
        if not 1 <= replicas <= 64:
            raise AdminError(422, "validation_error", "replicas must be between 1 and 64")
        max_replicas = _field(body, "max_replicas", int, default=None)
        if max_replicas is not None and not on_ray:
            raise AdminError(
                422,
                "validation_error",
                f"max_replicas is for a deployment on Ray; {name} runs on the host",
            )
        if max_replicas is not None and not max(1, replicas) <= max_replicas <= 1024:
            raise AdminError(
                422, "validation_error", f"max_replicas must be >= replicas ({replicas})"
            )
        async with self.lock(name):
            try:
                await self.supervisor.scale(name, replicas, max_replicas=max_replicas)
            except LoadFailed as exc:
                raise AdminError(422, "load_failed", exc.reason) from None
            self.store.set_replicas(name, replicas)
            if group.spec.ray is not None:
                self.store.set_ray(name, group.spec.version, group.spec.ray.to_json())
        self._audit("scale", name, _user(request), replicas=replicas, max_replicas=max_replicas)
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
        self._check_secrets(target.secrets)  # still readable? say which one, before recording
        # a rollback is a new version with the old snapshot and pins, so history stays linear
        version = self.store.add_version(
            name,
            entry=target.entry,
            code_key=target.code_key,
            replicas=deployment.replicas,
            env=target.env,
            pins=target.pins,
            created_by=_user(request),
            secrets=target.secrets,
            memory=target.memory,
            ray=target.ray,
        )
        user = _user(request)
        async with self.lock(name):
            await self.roll_out_locked(version, action="rollback")
            # a person chose this version: following the alias would undo it
            paused = self.follows.pause(
                name, f"rolled back to v{target.version} as v{version.version}", user
            )
            if paused:
                specs = [f.spec for f in paused]
                self._audit("follow.pause", name, user, follows=specs, version=version.version)
        return JSONResponse(self._describe(name))

    async def loadtest(self, request: Request) -> Response:
        """Keep a load test's ``summary`` (and HTML ``report``) with the service's current
        version (see :mod:`shipyard.serve.loadtests`)."""
        from shipyard.serve.loadtests import LoadTestStore

        name = request.path_params["name"]
        deployment = self.store.get(name)
        if deployment is None:
            raise AdminError(404, "not_found", f"no deployment named {name!r}")
        body = await self._json(request)
        summary = _field(body, "summary", dict)
        report = _field(body, "report", str, default=None)
        record = LoadTestStore(self.meta).record(
            name,
            deployment.current_version,
            summary,
            report=report,
            created_by=_field(body, "user", str, default="unknown"),
        )
        return JSONResponse(record.to_json(), status_code=201)

    async def move_alias(self, request: Request) -> Response:
        """``POST /models/{name}/aliases/{alias}`` ``{"version": N}``: point the alias at that
        version (created or moved; audited as the caller, like ``shipyard models alias``)."""
        from starlette.concurrency import run_in_threadpool

        from shipyard.registry import ModelNotFound, ModelSpecError, Registry

        name, alias = request.path_params["name"], request.path_params["alias"]
        version = _field(await self._json(request), "version", int)
        registry = Registry(self.meta, blobs=self.blobs, home=self.home)
        try:
            before = await run_in_threadpool(
                registry.set_alias, name, version, alias, user=_user(request)
            )
        except ModelSpecError as exc:
            raise AdminError(422, "validation_error", str(exc)) from None
        except ModelNotFound as exc:
            raise AdminError(404, "not_found", str(exc)) from None
        self.follower.wake()  # deployments following it roll now, not at the next look
        serving = await run_in_threadpool(self.store.pinned_through, name, alias)
        return JSONResponse(
            {
                "model": name,
                "alias": alias,
                "version": version,
                "previous": before,
                # deployments resolve an alias when deployed: those serving another version
                "still_serving": [
                    {"service": service, "deployment_version": deployed, "serves": pinned}
                    for service, deployed, pinned in serving
                    if pinned != f"{name}:{version}"
                ],
            }
        )

    async def undeploy(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.store.get(name) is None:
            raise AdminError(404, "not_found", f"no deployment named {name!r}")
        async with self.lock(name):
            await self.supervisor.undeploy(name)
            self.store.deactivate(name)
        self._audit("undeploy", name, _user(request))
        return JSONResponse({"service": name, "active": False})


def _user(request: Request) -> str:
    """Who asked: the user the CLI says it runs as, else the key's label."""
    return request.headers.get("x-shipyard-user") or "admin"


_MISSING: Any = object()


def _ray_field(body: dict[str, Any], replicas: int) -> dict[str, Any] | None:
    """``"on": "ray"`` with optional ``min_replicas`` (default ``replicas``),
    ``max_replicas`` (default the min), ``target_ongoing`` (2) and ``replica_cpus`` (1)."""
    where = _field(body, "on", str, default="host")
    if where not in ("host", "ray"):
        raise AdminError(422, "validation_error", f"field 'on' must be host or ray, got {where!r}")
    names = ("min_replicas", "max_replicas", "target_ongoing", "replica_cpus", "replica_resources")
    if where == "host":
        given = [n for n in names if body.get(n) is not None]
        if given:
            raise AdminError(
                422,
                "validation_error",
                f'{", ".join(given)} apply to a deployment on Ray ("on": "ray")',
            )
        return None
    from shipyard.serve.ray_deployments import RayPlacement

    low = _field(body, "min_replicas", int, default=None)
    low = replicas if low is None else low
    high = _field(body, "max_replicas", int, default=None)
    target = body.get("target_ongoing", 2.0)
    cpus = body.get("replica_cpus", 1.0)
    resources = _field(body, "replica_resources", dict, default={})
    checked = [("target_ongoing", target), ("replica_cpus", cpus)]
    checked += [(f"replica_resources.{k}", v) for k, v in resources.items()]
    for label, value in checked:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AdminError(422, "validation_error", f"field {label!r} must be a number")
    try:
        placement = RayPlacement(
            min_replicas=low,
            max_replicas=high if high is not None else max(1, low),
            target_ongoing=float(target),
            cpus=float(cpus),
            resources={str(k): float(v) for k, v in resources.items()},
        )
    except ValueError as exc:
        raise AdminError(422, "validation_error", str(exc)) from None
    return placement.to_json()


def _placement(ray: dict[str, Any] | None) -> RayPlacement | None:
    if ray is None:
        return None
    from shipyard.serve.ray_deployments import RayPlacement

    return RayPlacement.from_json(ray)


def _memory_field(body: dict[str, Any]) -> int | None:
    """``memory``: ``"512M"``, ``"2G"`` or a number of bytes; absent or null: no limit."""
    from shipyard.serve.memory import SizeError, parse_size

    value = body.get("memory")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise AdminError(
            422, "validation_error", f"field 'memory' must be a size like \"512M\", got {value!r}"
        )
    try:
        return parse_size(str(value))
    except SizeError as exc:
        raise AdminError(422, "validation_error", str(exc)) from None


def _int_query(
    value: str | None, name: str, low: int, high: int, default: int | None = None
) -> int | None:
    """A whole-number query parameter between ``low`` and ``high`` (absent: ``default``)."""
    if value is None or value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise AdminError(
            422, "validation_error", f"{name} must be a whole number from {low} to {high}"
        )
    return int(value)


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
