"""Services deployed ``--on ray``, on the host's side: Ray places and scales the replicas,
the host stays the front door and the control plane.

Each deployment *version* is a Ray Serve application of its own (``shipyard-SERVICE-vN``)
with one deployment of :class:`~shipyard.serve.ray_replica.WorkerReplica`, whose replicas
each keep one shipyard worker. The host is a Ray driver: :class:`RayBackend` runs the
application (``serve.run``, in a thread), then follows the replicas' addresses in the
cluster's :class:`~shipyard.serve.ray_replica.Directory` and connects to each worker's TCP
port itself (:class:`RemoteReplica`): the request path is the local one (keys, validation,
contracts, metrics and access logs in the host; the same framing to the worker), with no
Ray proxy or handle in between.

- The application's config holds no secret value and no blob: the host hands the version's
  code snapshot, pinned blobs and secrets to the cluster's directory first, and each replica
  fetches them to its node (``ray_files.py``).
- A redeploy starts the new version's application, waits until its minimum of replicas
  answered READY, switches traffic, drains the old version's replicas in the host, then
  deletes the old application: no request is sent to a replica Ray is stopping, which is
  how Ray Serve's own in-place updates drop requests.
- ``scale`` changes the application's autoscaling bounds in place (Ray Serve updates a
  deployment's config without restarting its replicas).
- A replica whose worker dies fails only its requests in flight, with the cause the replica
  recorded in the directory (``the worker was killed (SIGKILL ...) (Ray node 1f2e3d4c)``);
  Ray's health check replaces it and the host connects to the new one when it registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.serve.errors import ServeError
from shipyard.serve.protocol import ProtocolError
from shipyard.serve.replica import LoadFailed, Replica, WorkerSpec

if TYPE_CHECKING:
    from shipyard.serve.supervisor import ServiceGroup, VersionSpec

log = logging.getLogger("shipyard.serve")

#: how often the host reads the directory for replicas that came or went
POLL_SECONDS = 0.25
#: Ray Serve health-checks replicas this often (a dead worker is replaced within ~2 s)
HEALTH_CHECK_SECONDS = 1.0


class RayServeError(ServeError):
    """Ray Serve refused or failed a deployment (not the service's own ``load()``)."""


@dataclass
class RayPlacement:
    """How a version's replicas run on Ray: Ray Serve's autoscaling bounds and target."""

    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing: float = 2.0
    #: CPUs Ray reserves for each replica
    cpus: float = 1.0
    #: custom Ray resources each replica needs (``{"gpu_node": 0.01}`` pins them to such nodes)
    resources: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # no scale to zero: a replica that does not exist reports no load to scale up on
        if self.min_replicas < 1 or self.max_replicas < self.min_replicas:
            raise ValueError(
                f"replicas on Ray: need 1 <= min ({self.min_replicas}) <= max ({self.max_replicas})"
            )
        if self.target_ongoing <= 0:
            raise ValueError(f"target ongoing requests must be > 0, got {self.target_ongoing}")
        if self.cpus < 0:
            raise ValueError(f"CPUs per replica must be >= 0, got {self.cpus}")
        for name, amount in self.resources.items():
            if not name or amount <= 0:
                raise ValueError(f"resource {name!r}: the amount must be > 0, got {amount}")

    def to_json(self) -> dict[str, Any]:
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing": self.target_ongoing,
            "cpus": self.cpus,
            "resources": dict(self.resources),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RayPlacement:
        return cls(
            min_replicas=int(data.get("min_replicas", 1)),
            max_replicas=int(data.get("max_replicas", data.get("min_replicas", 1))),
            target_ongoing=float(data.get("target_ongoing", 2.0)),
            cpus=float(data.get("cpus", 1.0)),
            resources={str(k): float(v) for k, v in (data.get("resources") or {}).items()},
        )


def app_name(service: str, version: int) -> str:
    return f"shipyard-{service}-v{version}"


class RemoteReplica(Replica):
    """A worker of a Ray replica, reached over TCP at the address it registered."""

    def __init__(self, spec: WorkerSpec, key: str, entry: dict[str, Any], number: int) -> None:
        from pathlib import Path

        super().__init__(spec, Path(f"/nonexistent/{key}"), number)
        self.key = key
        self.entry = entry
        self._closed = asyncio.Event()
        #: asks the directory why the replica went (set by the backend)
        self.why_gone: Any = None

    async def start(self, ready_timeout: float = 30.0) -> None:
        try:
            await asyncio.wait_for(self._connect(), ready_timeout)
        except (TimeoutError, OSError, ProtocolError, asyncio.IncompleteReadError) as exc:
            self._closed.set()
            raise LoadFailed(
                f"could not reach the Ray replica at {self.entry['host']}:{self.entry['port']}:"
                f" {exc!r}"
            ) from None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.entry["host"], int(self.entry["port"]), limit=64 << 20
        )
        self.writer.write(str(self.entry["token"]).encode())
        await self._await_ready()

    def _gone(self, reason: str) -> None:
        super()._gone(reason)
        self._closed.set()

    @property
    def pid(self) -> int | None:
        """The worker's pid on its Ray node (not a process of this host)."""
        pid = self.entry.get("pid")
        return int(pid) if pid is not None else None

    async def _why_closed(self) -> None:
        """The connection broke: ask the directory why (the replica records the worker's
        exit before it goes); otherwise the replica itself went (its node, or Ray)."""
        if self.why_gone is None:
            return
        for _ in range(8):
            reason = await self.why_gone(self.key)
            if reason:
                self.exit_reason = reason
                return
            await asyncio.sleep(0.1)
        self.exit_reason = (
            f"the Ray replica on node {str(self.entry.get('node'))[:8]} "
            f"({self.entry['host']}) went away: its actor or its node was lost"
        )

    async def terminate(self, grace: float = 10.0) -> None:
        """Close the connection; Ray stops the replica (scale-down or the app deleted)."""
        self.stopping = True
        self.ready = False
        self._close()

    async def kill(self) -> None:
        await self.terminate()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
        self._gone(self.exit_reason or "the replica was stopped")

    async def wait_exit(self) -> int:
        await self._closed.wait()
        return 0


class RayBackend:
    """The host's link to Ray Serve (the host is a Ray driver; see the module)."""

    def __init__(self, address: str | None, store_url: str | None = None) -> None:
        self.address = address
        #: the host's store, where the replicas' serving-log segments land (``ray_logs.py``)
        self.store_url = store_url
        self._collector: asyncio.Task[None] | None = None
        self._collect_warned: set[str] = set()
        self._connected = False
        self._directory: Any = None
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._numbers = 0

    async def connect(self) -> None:
        if self._connected:
            return
        try:
            await asyncio.to_thread(self._connect_blocking)
        except RayServeError as exc:
            raise LoadFailed(str(exc)) from None
        except Exception as exc:  # the cluster is unreachable, or Serve would not start
            raise LoadFailed(
                f"could not use the Ray cluster at {self.address}: {type(exc).__name__}: {exc}"
            ) from None
        self._connected = True
        if self.store_url is not None:
            self._collector = asyncio.create_task(self._collect_loop())

    async def _collect_loop(self) -> None:
        from shipyard.serve.ray_logs import COLLECT_SECONDS

        while True:
            await asyncio.sleep(COLLECT_SECONDS)
            try:
                await self.collect_logs()
            except Exception as exc:  # the cluster is unreachable for a moment
                log.warning("taking the serving logs of replicas on Ray failed: %s", exc)

    async def collect_logs(self) -> int:
        """Take the serving-log segments the nodes shipped to the directory into the host's
        store (``ray_logs.py``); returns how many were stored."""
        import ray
        from shipyard.serve.ray_logs import LogShipError, store_segments

        assert self.store_url is not None
        pending: dict[str, dict[str, Any]] = await self._directory.pending_logs.remote()
        count = 0
        for service, segments in pending.items():
            names = list(segments)
            refs = [segments[n][1] for n in names]
            data = await asyncio.to_thread(ray.get, refs)
            batch = {n: (segments[n][0], d) for n, d in zip(names, data, strict=True)}
            try:
                stored = await asyncio.to_thread(store_segments, self.store_url, service, batch)
            except LogShipError as exc:
                if service not in self._collect_warned:  # once: they wait in the directory
                    self._collect_warned.add(service)
                    log.warning("%s: %s", service, exc)
                continue
            if stored:
                await self._directory.logs_taken.remote(service, stored)
                count += len(stored)
        return count

    def _connect_blocking(self) -> None:
        if self.address is None:  # before importing Ray: the host has none to use
            raise RayServeError(
                "deploy --on ray needs a Ray cluster: start the host with "
                "SHIPYARD_RAY_ADDRESS=HOST:6379 (or ray_address in config.yaml)"
            )
        import ray
        from ray import serve
        from shipyard.serve.ray_replica import directory

        if not ray.is_initialized():
            ray.init(
                address=self.address,
                namespace="shipyard",
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        # no HTTP proxy: the host is the front door
        serve.start(http_options={"location": "NoServer"})
        self._directory = directory()

    async def why_gone(self, key: str) -> str | None:
        return await self._directory.reason.remote(key)  # type: ignore[no-any-return]

    def _application(self, spec: VersionSpec, config: dict[str, Any]) -> Any:
        from ray import serve
        from shipyard.serve.ray_replica import WorkerReplica

        placement = spec.ray
        assert placement is not None
        deployment = serve.deployment(
            WorkerReplica,
            name=spec.service,
            ray_actor_options={"num_cpus": placement.cpus, "resources": placement.resources},
            autoscaling_config=_autoscaling(placement),
            health_check_period_s=HEALTH_CHECK_SECONDS,
            health_check_timeout_s=10.0,
            # the replica stops its worker, then ships its last serving-log segment
            graceful_shutdown_timeout_s=15.0,
            graceful_shutdown_wait_loop_s=0.5,
            max_constructor_retry_count=1,
        )
        return deployment.bind(config)  # type: ignore[attr-defined]

    async def run(
        self,
        spec: VersionSpec,
        config: dict[str, Any],
        worker: WorkerSpec,
        payload: dict[str, bytes],
        secrets: dict[str, str],
    ) -> list[RemoteReplica]:
        """Run ``spec``'s application and connect to its first ``min_replicas`` workers.
        ``payload`` (the blobs ``config`` names by digest) and ``secrets`` (their values) go
        to the cluster's directory first, where the replicas fetch them (``ray_files.py``):
        not into the application's config, which the GCS keeps. Raises :class:`LoadFailed`
        (the application is deleted again)."""
        await self.connect()
        from ray import serve

        app = app_name(spec.service, spec.version)
        application = self._application(spec, config)
        started = time.monotonic()
        try:
            # before the replicas start (and again when a restarted host takes the
            # application up: the directory may have lost it with the cluster's head)
            await self._directory.keep.remote(app, payload, secrets)
            # a version is immutable: one already running (a restarted host) is taken up as
            # it is (serve.run again would restart its replicas: Ray Serve gives each run of
            # an imperative deployment a new code version)
            if not await asyncio.to_thread(_running, app):
                await asyncio.to_thread(
                    serve.run, application, name=app, route_prefix=None, blocking=False
                )
        except Exception as exc:  # RuntimeError: the deployment failed to start
            reason = None
            with contextlib.suppress(Exception):
                reason = await self._directory.failure.remote(app)
            await self.delete(app)
            raise LoadFailed(reason or _failure(exc)) from None
        assert spec.ray is not None
        wanted = max(1, spec.ray.min_replicas)
        running = time.monotonic()
        replicas = await self._wait_replicas(app, worker, wanted)
        log.info(
            "%s: Ray Serve ran it in %.1f s, %d replica(s) connected in %.1f s more",
            app,
            running - started,
            len(replicas),
            time.monotonic() - running,
        )
        return replicas

    async def _wait_replicas(
        self, app: str, worker: WorkerSpec, wanted: int, timeout: float = 120.0
    ) -> list[RemoteReplica]:
        deadline = time.monotonic() + timeout
        while True:
            entries = await self._directory.entries.remote(app)
            if len(entries) >= wanted:
                break
            if time.monotonic() > deadline:
                await self.delete(app)
                raise LoadFailed(f"only {len(entries)} of {wanted} Ray replicas registered")
            await asyncio.sleep(0.1)
        replicas = [self._replica(worker, key, entry) for key, entry in entries.items()]
        await asyncio.gather(*(r.start() for r in replicas))
        return replicas

    def _replica(self, worker: WorkerSpec, key: str, entry: dict[str, Any]) -> RemoteReplica:
        self._numbers += 1
        replica = RemoteReplica(worker, key, entry, self._numbers)
        replica.why_gone = self.why_gone
        return replica

    def follow(self, group: ServiceGroup, worker: WorkerSpec) -> None:
        """Keep ``group``'s replicas in step with the directory (new ones connected, gone
        ones dropped) until :meth:`stop_following`."""
        assert group.spec.ray is not None
        app = app_name(group.spec.service, group.spec.version)
        self._pollers[app] = asyncio.create_task(self._follow(app, group, worker))

    async def _follow(self, app: str, group: ServiceGroup, worker: WorkerSpec) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                entries: dict[str, Any] = await self._directory.entries.remote(app)
            except Exception as exc:  # the cluster is unreachable for a moment
                log.warning("reading the Ray directory for %s failed: %s", app, exc)
                continue
            known = {r.key: r for r in group.replicas if isinstance(r, RemoteReplica)}
            for key, replica in known.items():
                if replica.gone is not None and key in entries:
                    entries.pop(key)  # its connection broke: wait for Ray to replace it
                if replica.gone is not None or key not in entries:
                    if replica.gone is None:  # Ray scaled it down: the host drains it
                        asyncio.create_task(replica.drain_and_stop())
                    group.replicas = [r for r in group.replicas if r is not replica]
            for key, entry in entries.items():
                if key in known:
                    continue
                fresh = self._replica(worker, key, entry)
                try:
                    await fresh.start()
                except LoadFailed as exc:
                    log.warning("%s: %s", app, exc.reason)
                    continue
                group.replicas = [*group.replicas, fresh]

    def stop_following(self, app: str) -> None:
        task = self._pollers.pop(app, None)
        if task is not None:
            task.cancel()

    async def scale(self, spec: VersionSpec, config: dict[str, Any]) -> None:
        """Apply ``spec.ray``'s new bounds to the running application, in place."""
        from ray import serve

        app = app_name(spec.service, spec.version)
        application = self._application(spec, config)
        await asyncio.to_thread(serve.run, application, name=app, route_prefix=None, blocking=False)

    async def delete(self, app: str) -> None:
        from ray import serve

        self.stop_following(app)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(serve.delete, app)
        if self._directory is not None:
            with contextlib.suppress(Exception):
                await self._directory.forget.remote(app)

    def close(self) -> None:
        for app in list(self._pollers):
            self.stop_following(app)
        if self._collector is not None:  # what is left waits in the directory
            self._collector.cancel()


def _running(app: str) -> bool:
    from ray import serve

    status = serve.status().applications.get(app)
    return status is not None and status.status == "RUNNING"


def _autoscaling(placement: RayPlacement) -> dict[str, Any]:
    return {
        "min_replicas": placement.min_replicas,
        "max_replicas": placement.max_replicas,
        "initial_replicas": max(1, placement.min_replicas),
        "target_ongoing_requests": placement.target_ongoing,
        "metrics_interval_s": 1.0,
        "look_back_period_s": 5.0,
        "upscale_delay_s": 2.0,
        "downscale_delay_s": 30.0,
        "policy": {"policy_function": "shipyard.serve.ray_replica:scale_by_in_flight"},
    }


def _failure(exc: BaseException) -> str:
    text = str(exc)
    marker = "load() failed:"
    if marker in text:
        line = text[text.index(marker) :].splitlines()[0]
        return line.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return "Ray Serve could not start the replicas: " + (lines[-1] if lines else repr(exc))


__all__ = ["RayBackend", "RayPlacement", "RayServeError", "RemoteReplica", "app_name"]
