"""The supervisor: the replicas of every deployed service, kept at their desired count.

- ``deploy`` starts the new version's replicas, waits until every one is ready, switches the
  service's traffic to them in one assignment, then drains the old replicas (requests in
  flight finish). A ``load()`` that fails leaves the old version serving.
- A replica that dies (exception, segfault, kill -9, out of memory) fails only its own
  requests in flight and is restarted with exponential backoff.
- Workers get an allow-listed environment: secrets in the host's environment never reach
  user code (nor the metadata database's URL: workers get model records from the host).
- Workers die with their host, even by ``kill -9`` (``parent.py``); the host claims its home
  at start (:meth:`Supervisor.claim`, ``hostfile.py``): one host per home, and the leftovers
  of the previous host of this home, if any survived, are stopped before anything starts —
  only those: other hosts on the machine (other homes) keep their workers.
- A version deployed with ``--memory`` runs each replica under that limit (``memory.py``: a
  memory cgroup where the host can make one, else an RSS poller); a replica over it is killed
  and restarted like any other that died, and ``on_memory_kill`` hooks hear of it.
- A replica whose call overran its timeout is *retired* (:meth:`Supervisor.retire`): it takes
  no new request, a replacement starts at once, the requests it had not started go to
  another replica, those it started finish, then it is stopped. A replica that does not
  answer its health pings for ``ping_timeout`` is skipped by ``pick`` (unless all are), and
  retired after ``hung_after``.
- When the host can (root, Linux), each worker isolates itself before running service code
  (``isolation.py``); when it cannot, the supervisor says so in a WARNING at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.serve import hostfile, isolation, memory
from shipyard.serve.replica import LoadFailed, Replica, WorkerSpec
from shipyard.serve.secrets import resolve_secrets

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.serve.model_channel import ModelSource
    from shipyard.serve.ray_deployments import RayBackend, RayPlacement

log = logging.getLogger("shipyard.serve")

#: environment variables a worker inherits from the host (plus the deployment's own --env)
ENV_ALLOW = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "PYTHONDONTWRITEBYTECODE",
    "SHIPYARD_HOME",
    "SHIPYARD_STORE_URL",
    "SHIPYARD_CACHE_URL",
    "SHIPYARD_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL",
    "SHIPYARD_USER",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
)
#: the store's own credentials are passed only when the store is on S3
_S3_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)
_BACKOFF_MAX = 30.0


def worker_env(extra: dict[str, str], store_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOW}
    if store_url.startswith("s3://"):
        env.update({k: v for k, v in os.environ.items() if k in _S3_ENV})
    # one BLAS thread per worker unless told otherwise: replicas already use the cores
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(name, "1")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class VersionSpec:
    """One deployable version of a service."""

    service: str
    version: int
    entry: str
    code_dir: Path
    replicas: int
    env: dict[str, str] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # name -> reference (secrets.py)
    #: each replica's memory limit in bytes (None: none)
    memory: int | None = None
    #: deployed by this host's development loop: the reconciler leaves it alone
    dev: bool = False
    #: run the replicas on Ray Serve with these bounds (``deploy --on ray``; None: here)
    ray: RayPlacement | None = None


class ServiceGroup:
    """The ready replicas of one version of one service, and what they serve."""

    def __init__(self, spec: VersionSpec, replicas: list[Replica]) -> None:
        self.spec = spec
        self.replicas = replicas
        info = replicas[0].ready_info
        self.endpoints: dict[str, tuple[int, dict[str, Any]]] = {
            e["name"]: (i, e) for i, e in enumerate(info.get("endpoints", []))
        }
        self.openapi: dict[str, Any] = info.get("openapi", {})
        self.models: dict[str, str] = info.get("models", {}) or {}
        #: what the worker's load found worth telling (a feature set not the model's)
        self.warnings: list[str] = [str(w) for w in info.get("warnings") or []]
        self._turn = 0

    def pick(self, max_in_flight: int) -> Replica | None:
        """The ready replica with the fewest requests in flight or on their way to it (its
        ``pending`` ones, admitted and still sending their body), if any has room; ties go
        round-robin so idle replicas share sequential traffic. The replica picked counts one
        request more ``pending``: the caller takes it down once it sent it or gave up.

        A replica that does not answer its health pings is picked only when every ready one
        is in that state (the "panic threshold" of Envoy: better a queue on a slow replica
        than refusing all)."""
        best: Replica | None = None
        least = 0
        stale: Replica | None = None
        stale_load = 0
        replicas = self.replicas
        count = len(replicas)
        self._turn = start = (self._turn + 1) % count if count else 0
        for i in range(count):
            replica = replicas[(start + i) % count]
            if not replica.ready:
                continue
            load = len(replica.in_flight) + replica.pending
            if replica.unresponsive:
                if stale is None or load < stale_load:
                    stale, stale_load = replica, load
            elif best is None or load < least:
                best, least = replica, load
        if best is None:
            best, least = stale, stale_load
        if best is None or least >= max_in_flight:
            return None
        best.pending += 1
        return best

    @property
    def ready_count(self) -> int:
        return sum(1 for r in self.replicas if r.ready)

    @property
    def in_flight(self) -> int:
        return sum(len(r.in_flight) for r in self.replicas)

    @property
    def unresponsive_count(self) -> int:
        return sum(1 for r in self.replicas if r.ready and r.unresponsive)

    @property
    def longest_timeout(self) -> float:
        """The longest timeout of the service's endpoints, in seconds."""
        return max(
            (float(e.get("timeout") or 30.0) for _, e in self.endpoints.values()), default=30.0
        )


Progress = Callable[[str], None]


class Supervisor:
    """Owns every worker process of the host.

    ``config`` (default: the settings) names the cache and the metadata database; ``models``
    (default: the registry of the settings) answers the workers' model lookups;
    ``memory_cgroups=False`` enforces ``--memory`` by polling RSS even where cgroups work.
    Every ready replica is pinged each ``ping_interval`` seconds; one whose ping waited
    ``ping_timeout`` is *unresponsive* (``pick`` skips it unless all are), and one that has
    been for ``hung_after`` (or its service's longest endpoint timeout and ``ping_timeout``,
    if longer: a sync call holds pings while it runs) is retired.
    """

    def __init__(
        self,
        home: Path,
        store_url: str,
        *,
        max_in_flight: int = 64,
        config: Settings | None = None,
        models: ModelSource | None = None,
        memory_cgroups: bool = True,
        ping_interval: float = 1.0,
        ping_timeout: float = 5.0,
        hung_after: float = 60.0,
        ray_address: str | None = None,
    ) -> None:
        from shipyard.config import settings

        self.home = home
        self.store_url = store_url
        self.max_in_flight = max_in_flight
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.hung_after = hung_after
        self._pinger: asyncio.Task[None] | None = None
        #: called with (service, reason) when a replica is retired (a call overran, ...)
        self.on_retire: list[Callable[[str, str], None]] = []
        #: replicas retired: how many, per service
        self.retirements: dict[str, int] = {}
        conf = config or settings()
        #: the Ray cluster of ``deploy --on ray`` (connected at the first such deploy)
        self.ray_address = ray_address if ray_address is not None else conf.ray_address
        self._ray: RayBackend | None = None
        #: the SHA-256 of each blob a version on Ray needs (read once: scale needs them too)
        self._ray_digests: dict[str, str] = {}
        #: version -> the blob keys of its file-artifact models' files (read from manifests)
        self._ray_file_keys: dict[tuple[str, int], list[str]] = {}
        self.cache_url = conf.cache_url
        self.db_url = conf.db_url
        if models is None:
            from shipyard.registry import Registry

            models = Registry(home=home)
        self.models = models
        #: whether workers are isolated, said once at start (and in /readyz)
        self.isolation = isolation.detect()
        if self.isolation.isolated:
            log.info(self.isolation.message())
        else:
            log.warning(self.isolation.message())
        self.services: dict[str, ServiceGroup] = {}
        self.socket_dir = Path(tempfile.mkdtemp(prefix="sy-"))  # short, private (0700)
        os.chmod(self.socket_dir, 0o700)
        #: workers write their Prometheus metrics here (the cache's reads and fallbacks, the
        #: user's own); the host's /metrics adds them up
        self.metrics_dir = self.socket_dir / "metrics"
        self.metrics_dir.mkdir()
        self._counter = 0
        self._watchers: set[asyncio.Task[None]] = set()
        self._closing = False
        self.restarts: dict[str, int] = {}
        self.on_restart: Callable[[str], None] | None = None
        #: (service, reason) when a replica could not be restarted (a secret gone, ...)
        self.on_start_failed: Callable[[str, str], None] | None = None
        #: this host's id in its home's record, on every worker's command line
        self.host_id = uuid.uuid4().hex
        #: how --memory is enforced on this host, said once at start
        self.memory = memory.detect(self.host_id, cgroups=memory_cgroups)
        log.info(self.memory.message())
        #: called with (service, reason) when a replica is killed over its memory limit
        self.on_memory_kill: list[Callable[[str, str], None]] = []
        self.record: hostfile.HostRecord | None = None
        #: every replica not yet collected, deployed or still starting: close() stops them all
        self._replicas: weakref.WeakSet[Replica] = weakref.WeakSet()

    def claim(self) -> list[int]:
        """Claim the home before starting any worker: stop the leftovers of the host that
        ran here before, record this one (``hostfile.py``). Returns the pids stopped.
        Raises :class:`~shipyard.serve.hostfile.HostBusy` if another host runs here."""
        try:
            self.record, stopped = hostfile.claim(self.home, self.host_id)
        except hostfile.HostBusy as exc:
            log.error("%s", exc)  # the line to read above the server's traceback
            raise
        return stopped

    def _spawned(self, pid: int) -> None:
        if self.record is None:
            return
        try:
            self.record.add_worker(pid)
        except OSError as exc:  # the worker still dies with the host; say what is missing
            log.warning("could not record worker %s in %s: %s", pid, self.record.path, exc)

    def _worker_spec(
        self, spec: VersionSpec, log_name: str, socket_dir: Path | None = None
    ) -> WorkerSpec:
        """Everything a worker of ``spec`` gets from the host: its environment (the
        allow-list, never the database URL or a token), pins, secrets and isolation plan."""
        logs = self.home / "serve" / "logs" / spec.service
        logs.mkdir(parents=True, exist_ok=True)
        plan = None
        if self.isolation.isolated:
            plan = isolation.plan_for(
                self.home,
                code_dir=spec.code_dir,
                socket_dir=socket_dir or self.socket_dir,
                store_url=self.store_url,
                cache_url=self.cache_url,
                db_url=self.db_url,
                service=spec.service,
            )
        # the home and stores the host resolved (a flag or config.yaml may have named them:
        # an isolated worker cannot read config.yaml), then the deployment's own --env
        env = worker_env({}, self.store_url)
        env["SHIPYARD_HOME"] = str(self.home)
        env["SHIPYARD_STORE_URL"] = self.store_url
        env["SHIPYARD_CACHE_URL"] = self.cache_url
        if plan is not None:  # the worker's own tmpfs: everywhere else is read-only
            env["TMPDIR"] = env["HOME"] = "/tmp"
        env = {**env, **spec.env, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        return WorkerSpec(
            service=spec.service,
            entry=spec.entry,
            code_dir=spec.code_dir,
            env=env,
            pins=spec.pins,
            log_path=logs / f"v{spec.version}-{log_name}.log",
            secrets=spec.secrets,
            models=self.models,
            isolation=plan,
            host_pid=os.getpid(),
            host_id=self.host_id,
        )

    def _new_replica(self, spec: VersionSpec) -> Replica:
        self._counter += 1
        worker = self._worker_spec(spec, str(self._counter))
        replica = Replica(worker, self.socket_dir / f"{self._counter}.sock", self._counter)
        replica.on_spawn = self._spawned
        if spec.memory is not None:
            replica.memory = memory.Guard(self.memory, f"replica-{self._counter}", spec.memory)
        self._replicas.add(replica)
        return replica

    async def deploy(self, spec: VersionSpec, progress: Progress | None = None) -> ServiceGroup:
        """Start ``spec``'s replicas; when all are ready switch traffic, then drain the old.
        Raises :class:`LoadFailed` (the old version keeps serving)."""
        say = progress or (lambda _: None)
        if spec.ray is not None:
            replicas = await self._start_on_ray(spec, say)
        else:
            replicas = [self._new_replica(spec) for _ in range(max(1, spec.replicas))]
            say(f"starting {len(replicas)} replica(s) of {spec.service} v{spec.version}")
            results = await asyncio.gather(*(r.start() for r in replicas), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                await asyncio.gather(*(r.kill() for r in replicas))
                first = failures[0]
                raise first if isinstance(first, LoadFailed) else LoadFailed(repr(first))
        group = ServiceGroup(spec, replicas)
        # what load() resolved (an alias) is pinned for every later replica and restart
        spec.pins = {**group.models, **spec.pins}
        old = self.services.get(spec.service)
        self.services[spec.service] = group  # the switch: new requests go to the new replicas
        say(f"{spec.service} v{spec.version} is live on {len(replicas)} replica(s)")
        if spec.ray is not None:
            assert self._ray is not None
            self._ray.follow(group, self._worker_spec(spec, "ray"))
        else:
            for replica in replicas:
                self._watch(group, replica)
        if self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_loop())
        if old is not None:
            say(f"draining v{old.spec.version}")
            await self._stop_group(old)
        return group

    async def _stop_group(self, group: ServiceGroup) -> None:
        """Drain ``group``'s replicas (requests in flight finish); on Ray, then delete its
        application (only once the host sends it nothing more)."""
        if group.spec.ray is not None and self._ray is not None:
            from shipyard.serve.ray_deployments import app_name

            app = app_name(group.spec.service, group.spec.version)
            self._ray.stop_following(app)
            await asyncio.gather(*(r.drain_and_stop() for r in group.replicas))
            # the host sends it nothing more: Ray stops its replicas in the background
            self._background(self._ray.delete(app))
            return
        await asyncio.gather(*(r.drain_and_stop() for r in group.replicas))

    def _ray_backend(self) -> RayBackend:
        if self._ray is None:
            from shipyard.serve.ray_deployments import RayBackend

            self._ray = RayBackend(self.ray_address, self.store_url)
        return self._ray

    def ray_config(
        self, spec: VersionSpec, payload: dict[str, bytes] | None = None
    ) -> dict[str, Any]:
        """What each Ray replica of ``spec`` gets (``ray_replica.WorkerReplica``): the
        environment, isolation plan and pinned model records a local worker would get, and
        the key and digest of each blob its node fetches (``ray_files.py``). No secret value
        and no store credential: Ray Serve keeps this in the GCS. ``payload``, if given, is
        filled with the blobs' bytes (for the cluster's directory)."""
        from shipyard.serve.model_channel import _pinned
        from shipyard.serve.ray_files import digest, file_blobs, needed_blobs, read_payload
        from shipyard.store.blobs import check_key

        # a directory that does not change with the host's start: the same config is the
        # same application for Ray, so a restarted host finds its replicas as they were
        stable = Path(tempfile.gettempdir()) / "shipyard-ray-serve"
        worker = self._worker_spec(spec, "ray", socket_dir=stable)
        plan = worker.isolation
        env = dict(worker.env)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the host's directory, not the node's
        for name in _S3_ENV:  # the replica reads its node's copy, never the host's store
            env.pop(name, None)
        try:
            code_key = check_key(spec.code_dir.name)
        except ValueError:
            raise LoadFailed(
                f"{spec.code_dir} is not a stored code snapshot: a version on Ray runs from one"
            ) from None
        records = _pinned(self.models, dict(spec.pins))
        keys, snapshots = needed_blobs(code_key, records)
        # a file-artifact model's files, each a blob keyed by its SHA-256 (once per version)
        which = (spec.service, spec.version)
        if which not in self._ray_file_keys:
            self._ray_file_keys[which] = file_blobs(self.store_url, records)
        keys = list(dict.fromkeys([*keys, *self._ray_file_keys[which]]))
        unknown = [k for k in keys if k not in self._ray_digests]
        if unknown:
            fresh = read_payload(self.store_url, unknown)
            self._ray_digests.update({k: digest(v) for k, v in fresh.items()})
            if payload is not None:
                payload.update(fresh)
        if payload is not None:
            payload.update(read_payload(self.store_url, [k for k in keys if k not in payload]))
        public = self.home / "cache.pub"
        return {
            "app": f"shipyard-{spec.service}-v{spec.version}",
            "service": spec.service,
            "version": spec.version,
            "entry": spec.entry,
            "code_key": code_key,
            "blobs": {k: self._ray_digests[k] for k in keys},
            "snapshots": snapshots,
            "cache_pub": public.read_text() if public.is_file() else None,
            "env": env,
            "pins": dict(spec.pins),
            "records": records,
            "isolate": plan.to_json() if plan is not None else None,
            "make_dirs": [b.path for b in plan.binds if b.writable] if plan else [],
            "log_dir": str(self.home / "serve" / "logs" / spec.service),
        }

    async def _start_on_ray(self, spec: VersionSpec, say: Progress) -> list[Replica]:
        assert spec.ray is not None
        backend = self._ray_backend()
        say(
            f"starting {spec.service} v{spec.version} on Ray "
            f"({spec.ray.min_replicas}..{spec.ray.max_replicas} replicas)"
        )
        from shipyard.serve.ray_files import FetchError
        from shipyard.serve.secrets import SecretError

        payload: dict[str, bytes] = {}
        try:
            config = await asyncio.to_thread(self.ray_config, spec, payload)
            # resolved now, handed to the cluster's directory: never in the app's config
            values = resolve_secrets(spec.secrets)
        except (SecretError, FetchError) as exc:
            raise LoadFailed(str(exc)) from None
        worker = self._worker_spec(spec, "ray")
        replicas = await backend.run(spec, config, worker, payload, values)
        return list(replicas)

    async def scale(
        self, service: str, replicas: int, *, max_replicas: int | None = None
    ) -> ServiceGroup:
        """Run ``replicas`` replicas (on Ray: between ``replicas`` and ``max_replicas``,
        default the same number, which Ray's autoscaler keeps to)."""
        group = self.services[service]
        group.spec.replicas = replicas
        if group.spec.ray is not None:
            from dataclasses import replace

            group.spec.ray = replace(
                group.spec.ray,
                min_replicas=replicas,
                max_replicas=max_replicas if max_replicas is not None else max(1, replicas),
            )
            config = await asyncio.to_thread(self.ray_config, group.spec)
            await self._ray_backend().scale(group.spec, config)
            return group
        live = [r for r in group.replicas if not r.stopping]
        if replicas > len(live):
            new = [self._new_replica(group.spec) for _ in range(replicas - len(live))]
            results = await asyncio.gather(*(r.start() for r in new), return_exceptions=True)
            for replica, result in zip(new, results, strict=True):
                if isinstance(result, BaseException):
                    raise result if isinstance(result, LoadFailed) else LoadFailed(repr(result))
                group.replicas.append(replica)
                self._watch(group, replica)
        elif replicas < len(live):
            extra = live[replicas:]
            group.replicas = [r for r in group.replicas if r not in extra]
            await asyncio.gather(*(r.drain_and_stop() for r in extra))
        return group

    async def undeploy(self, service: str) -> None:
        group = self.services.pop(service, None)
        if group is not None:
            await self._stop_group(group)

    def retire(self, group: ServiceGroup, replica: Replica, reason: str) -> None:
        """Retire a replica that misbehaved (a call overran its timeout, or it stopped
        answering pings): it takes no new request, a replacement starts at once (and takes
        its place when ready), the worker is told RETIRE (the requests it had not started
        fail with ``NotStarted``: the invoker sends them elsewhere), and once the requests
        it started are done - or after the service's longest timeout and a few seconds -
        it is stopped. Its end is not a crash; the watcher does not restart it."""
        if replica.retiring or replica.stopping or not replica.ready:
            return  # retired already, stopping, or gone (the watcher restarts it)
        if group.spec.ray is not None:
            # a Ray replica is not the host's to restart: take it out of the rotation
            log.warning("%s Ray replica %s: %s", group.spec.service, replica.number, reason)
            replica.ready = False
            return
        service = group.spec.service
        log.warning("retiring %s replica %s: %s", service, replica.number, reason)
        replica.exit_reason = f"retired: {reason}"
        replica.retire()
        self.retirements[service] = self.retirements.get(service, 0) + 1
        for hook in self.on_retire:
            hook(service, reason)
        self._background(self._replace(group, replica))
        self._background(self._stop_retired(group, replica))

    def _background(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _replace(self, group: ServiceGroup, retired: Replica) -> None:
        """Start a replica in ``retired``'s place; swap it in when ready."""
        if self._closing or self.services.get(group.spec.service) is not group:
            return  # an old version, draining: nothing to replace
        fresh = self._new_replica(group.spec)
        try:
            await fresh.start()
        except LoadFailed as exc:
            log.error("%s replica start failed: %s", group.spec.service, exc.reason)
            if self.on_start_failed is not None:
                self.on_start_failed(group.spec.service, exc.reason)
            fresh.exit_reason = exc.reason  # it holds the place, as a failed restart does
        if (
            self._closing
            or self.services.get(group.spec.service) is not group
            or retired not in group.replicas
        ):
            await fresh.terminate()  # redeployed, scaled down or closed meanwhile
            return
        group.replicas = [fresh if r is retired else r for r in group.replicas]
        self._watch(group, fresh)

    async def _stop_retired(self, group: ServiceGroup, replica: Replica) -> None:
        """Stop a retired replica once the requests it started are done, at the latest
        after the service's longest timeout and a few seconds. A worker that does not
        answer RETIRE within ``ping_timeout`` (stopped, or a call holding the GIL) is
        killed at once: no request can finish on it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + group.longest_timeout + 5.0
        try:
            await asyncio.wait_for(replica.retired.wait(), max(self.ping_timeout, 1.0))
        except TimeoutError:
            log.warning(
                "%s replica %s did not answer RETIRE; killing it",
                group.spec.service,
                replica.number,
            )
            await replica.kill()
            return
        while replica.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await replica.terminate(grace=max(0.0, deadline - loop.time()) + 2.0)

    async def _ping_loop(self) -> None:
        """Ping every ready replica; mark those slow to answer, retire the hung ones.

        A ping waits behind the calls queued before it on the connection, so a replica
        that keeps answering calls is busy, not hung: it may be skipped while another
        answers, but it is retired only when it answered nothing at all for ``hung_after``.
        """
        while not self._closing:
            await asyncio.sleep(self.ping_interval)
            now = time.monotonic()
            for group in list(self.services.values()):
                hung = max(self.hung_after, group.longest_timeout + self.ping_timeout)
                for replica in list(group.replicas):
                    if not replica.ready:
                        continue
                    sent = replica.ping_sent
                    if sent is None:
                        replica.ping(now)
                    elif now - max(sent, replica.heard) >= hung:
                        self.retire(
                            group,
                            replica,
                            f"did not answer health pings for {now - sent:.0f} s",
                        )
                    elif now - sent >= self.ping_timeout and not replica.unresponsive:
                        replica.unresponsive = True
                        log.warning(
                            "%s replica %s has not answered a health ping for %.1f s; "
                            "sending it no new request while another can take it",
                            group.spec.service,
                            replica.number,
                            now - sent,
                        )

    def _watch(self, group: ServiceGroup, replica: Replica) -> None:
        task = asyncio.create_task(self._watch_replica(group, replica))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch_replica(self, group: ServiceGroup, replica: Replica) -> None:
        backoff = 0.5
        while True:
            started = time.monotonic()
            code = await replica.wait_exit()
            _metrics_gone(self.metrics_dir, replica.pid)
            self._memory_killed(group, replica)
            if (
                replica.stopping
                or replica.retiring
                or self._closing
                or self.services.get(group.spec.service) is not group
            ):
                return
            log.warning(
                "%s replica %s exited (%s): %s; restarting in %.1f s",
                group.spec.service,
                replica.number,
                code,
                replica.exit_reason,
                backoff,
            )
            self.restarts[group.spec.service] = self.restarts.get(group.spec.service, 0) + 1
            if self.on_restart is not None:
                self.on_restart(group.spec.service)
            if time.monotonic() - started > 60:
                backoff = 0.5  # it had been healthy for a while
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)
            fresh = self._new_replica(group.spec)
            try:
                await fresh.start()
            except LoadFailed as exc:
                log.error("%s replica restart failed: %s", group.spec.service, exc.reason)
                if self.on_start_failed is not None:
                    self.on_start_failed(group.spec.service, exc.reason)
                # it takes the dead one's place, so that a later start that works replaces it
                group.replicas = [fresh if r is replica else r for r in group.replicas]
                replica = fresh
                replica.exit_reason = exc.reason
                continue
            if self.services.get(group.spec.service) is not group:
                await fresh.terminate()
                return
            group.replicas = [fresh if r is replica else r for r in group.replicas]
            replica = fresh

    def _memory_killed(self, group: ServiceGroup, replica: Replica) -> None:
        """A replica that exited over its memory limit: tell the hooks (events, metric)."""
        if replica.memory is None or replica.stopping or not replica.memory.oom_killed():
            return
        reason = memory.exceeded(replica.memory.limit)
        log.warning("%s replica %s: %s", group.spec.service, replica.number, reason)
        for hook in self.on_memory_kill:
            hook(group.spec.service, reason)

    async def close(self) -> None:
        self._closing = True
        groups = list(self.services.values())
        self.services.clear()
        # the deployed replicas, and those a cancelled deploy (a restore cut short) started
        replicas = {r for g in groups for r in g.replicas} | set(self._replicas)
        await asyncio.gather(*(r.terminate() for r in replicas))
        for task in list(self._watchers):
            task.cancel()
        if self._ray is not None:  # the applications stay: a restarted host takes them up
            self._ray.close()
        if self._pinger is not None:
            self._pinger.cancel()
        import shutil

        shutil.rmtree(self.socket_dir, ignore_errors=True)
        memory.remove_parent(self.memory)
        if self.record is not None:
            self.record.release()


def _metrics_gone(directory: Path, pid: int | None) -> None:
    """A worker exited: its live gauges must not linger in /metrics."""
    if pid is None:
        return
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
