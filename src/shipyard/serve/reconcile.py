"""Live reconciliation: a host converges on the desired state in the metadata database.

The desired state is the ``deployments`` table (:mod:`shipyard.serve.deployments`): each
active service, its current version and its replica count. Several hosts that share one
metadata database (PostgreSQL) and one blob store serve the same deployments: a deploy,
scale, rollback or undeploy made through any of them is recorded there, and every host reads
the desired state every ``interval`` seconds (``shipyard serve --reconcile-interval``, 1 s by
default) and converges on it, without a restart:

- an active deployment whose current version this host does not run: that version is rolled
  out here as a deploy is (every new replica ready, traffic switched in one assignment, the
  old replicas drained: no request fails for it);
- a replica count that differs: scaled (``--replicas`` counts per host);
- a deployment no longer active: undeployed (its requests in flight finish).

Which version is current is decided by the host that took the deploy: it records the version
current only once every replica of it was ready there, so a version whose ``load()`` fails
reaches no other host. A follower never writes the desired state (a slow one must not make an
older version current again); a version that does not start here is retried with backoff
(:data:`RETRY_FIRST` doubling to :data:`RETRY_MAX`) while the version before keeps serving,
and the service's events say why. When the database cannot be read, nothing changes: the host
keeps serving what it runs, and says so once.

What the development loop (``shipyard serve FILE.py:Class``) runs is that host's own: the
reconciler leaves a version the loop deployed alone, on the loop's host and on the others.

Each pass is one query. A service found to differ (:meth:`Reconciler.step_for`) converges in
a task of its own under the admin API's lock for that service (:meth:`AdminAPI.lock
<shipyard.serve.admin.AdminAPI.lock>`), reading its desired state again inside it: a slow
``load()`` holds back no other service, and a deploy made through this host meanwhile is
never undone. A change made through another host starts here within ``interval`` and the
time of one query; it is served once its replicas are ready.

At start, the first pass is the restore: every deployment comes back at its current version,
all at once, and nothing is written (a host restarting while another deploys must not make
the version before current again).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass, replace

from shipyard.serve.admin import AdminAPI
from shipyard.serve.deployments import Deployment, DeploymentVersion
from shipyard.serve.replica import LoadFailed

log = logging.getLogger("shipyard.serve")

#: seconds between two reads of the desired state (``shipyard serve --reconcile-interval``)
INTERVAL = 1.0
#: a version that did not start here is tried again after this many seconds, doubling
RETRY_FIRST = 2.0
#: ... up to this many
RETRY_MAX = 300.0


#: an active deployment and its current version, as :meth:`DeploymentStore.desired` reads them
Wanted = tuple[Deployment, DeploymentVersion]


class Step(enum.Enum):
    """What a host does to converge one service."""

    START = "start"  # roll out the current version here (in place of the one running, if any)
    SCALE = "scale"  # run as many replicas as the deployment says
    UNDEPLOY = "undeploy"  # stop it: it is no longer deployed


@dataclass
class _Failed:
    """A version that did not start on this host, and when to try it again."""

    version: int
    retry_at: float
    delay: float


class Reconciler:
    """Converges what ``admin``'s supervisor runs on the desired state in ``admin``'s
    database, every ``interval`` seconds (see the module docstring)::

        reconciler = Reconciler(host.admin, interval=1.0)
        await reconciler.converge()  # one pass: each service's work started
        await reconciler.settled()  # ... and done
    """

    def __init__(self, admin: AdminAPI, *, interval: float = INTERVAL) -> None:
        self.admin = admin
        self.store = admin.store
        self.supervisor = admin.supervisor
        self.interval = interval
        self._working: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, _Failed] = {}
        self._unreadable = False

    async def run(self) -> None:
        """Set aside what the development loop deployed (a starting host does not bring it
        back), then converge every ``interval`` seconds until cancelled."""
        try:
            for service in await asyncio.to_thread(self.store.set_aside_dev):
                log.info(
                    "not restoring %s: the development loop (shipyard serve FILE.py:Class) "
                    "deployed it; `shipyard deploy` it to keep it",
                    service,
                )
            while True:
                await self.converge()
                await asyncio.sleep(self.interval)
        finally:
            for task in self._working.values():
                task.cancel()

    async def converge(self) -> None:
        """One pass: read the desired state and start, for each service that differs from
        what this host runs, the work that converges it (unless that service's is under way).
        """
        try:
            rows = await asyncio.to_thread(self.store.desired)
        except Exception as exc:  # the database is away: keep serving what runs
            if not self._unreadable:
                log.warning("cannot read the desired deployments (%s); serving what runs", exc)
            self._unreadable = True
            return
        if self._unreadable:
            log.info("the desired deployments are readable again")
        self._unreadable = False
        wanted = {deployment.service: (deployment, version) for deployment, version in rows}
        for service in sorted(wanted.keys() | self.supervisor.services.keys()):
            if service in self._working or self.step_for(service, wanted.get(service)) is None:
                continue
            task = asyncio.create_task(self._converge_service(service))
            self._working[service] = task
            task.add_done_callback(self._done)

    def step_for(self, service: str, wanted: Wanted | None) -> Step | None:
        """What this host must do so that what it runs of ``service`` is ``wanted`` (its
        deployment and current version; None: not deployed), or None: nothing."""
        group = self.supervisor.services.get(service)
        if group is not None and group.spec.dev:
            return None  # this host's development loop runs it
        if wanted is None:
            return Step.UNDEPLOY if group is not None else None
        deployment, version = wanted
        if version.dev:
            return None  # another host's development loop deployed it
        if group is None or group.spec.version != version.version:
            failed = self._failed.get(service)
            if failed and failed.version == version.version and time.monotonic() < failed.retry_at:
                return None  # it did not start here: tried again later
            return Step.START
        if group.spec.replicas != deployment.replicas:
            return Step.SCALE
        return None

    def _done(self, task: asyncio.Task[None]) -> None:
        for service, working in list(self._working.items()):
            if working is task:
                del self._working[service]

    async def settled(self) -> None:
        """Wait until the work the passes so far started is done."""
        while self._working:
            await asyncio.gather(*self._working.values(), return_exceptions=True)

    async def _converge_service(self, service: str) -> None:
        """Converge ``service`` under its lock, on the desired state read again inside it (a
        deploy through this host may have changed it since the pass read it)."""
        try:
            async with self.admin.lock(service):
                found = await asyncio.to_thread(self.store.desired, service)
                wanted = found[0] if found else None
                step = self.step_for(service, wanted)
                if step is Step.UNDEPLOY:
                    self._failed.pop(service, None)
                    log.info("undeploying %s: it is no longer deployed", service)
                    await self.supervisor.undeploy(service)
                elif step is Step.START and wanted is not None:
                    deployment, version = wanted
                    await self._start(service, replace(version, replicas=deployment.replicas))
                elif step is Step.SCALE and wanted is not None:
                    await self._scale(service, wanted[0].replicas)
        except Exception:  # one service's trouble must not stop the others' convergence
            log.exception("could not converge %s on its desired state", service)

    async def _scale(self, service: str, replicas: int) -> None:
        log.info("scaling %s to %d replica(s)", service, replicas)
        try:
            await self.supervisor.scale(service, replicas)
        except LoadFailed as exc:
            log.error("%s: a replica did not start while scaling: %s", service, exc.reason)
            self.admin.replica_failed(service, exc.reason)

    async def _start(self, service: str, version: DeploymentVersion) -> None:
        failed = self._failed.get(service)
        running = self.supervisor.services.get(service)
        log.info(
            "%s v%d is deployed; starting it here%s",
            service,
            version.version,
            f" (in place of v{running.spec.version})" if running else "",
        )
        try:
            await self.admin.start_version(version)
        except Exception as exc:  # load() failed, the snapshot is unreadable, ...
            reason = exc.reason if isinstance(exc, LoadFailed) else f"{type(exc).__name__}: {exc}"
            delay = RETRY_FIRST
            if failed is not None and failed.version == version.version:
                delay = min(failed.delay * 2, RETRY_MAX)
            self._failed[service] = _Failed(version.version, time.monotonic() + delay, delay)
            log.error(
                "%s v%d did not start here: %s; trying again in %.0f s%s",
                service,
                version.version,
                reason,
                delay,
                "; the version before keeps serving" if running else "",
            )
            self.admin.replica_failed(service, reason)
            return
        self._failed.pop(service, None)


__all__ = ["INTERVAL", "RETRY_FIRST", "RETRY_MAX", "Reconciler", "Step", "Wanted"]
