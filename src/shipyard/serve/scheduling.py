"""The scheduler inside the host (``shipyard serve``, on unless ``--no-scheduler``).

It ticks in a thread of its own (its database calls block), started once the host is up and
stopped before the host closes its store. Runs are never forked from the host (it has
threads and an event loop): each is forked by the spawner, a fresh single-threaded process
the scheduler starts (see :class:`~shipyard.schedules.scheduler.Spawner`), as the host's
user, with the workers' allow-listed environment. On a database another scheduler already
ticks (a second host on the same SQLite file, or one of several hosts on PostgreSQL), this
one stands by, says so, and takes over if that one stops renewing its lease.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from shipyard.schedules.scheduler import MAX_RUNNING, Scheduler, Spawner, TickResult
from shipyard.schedules.store import ScheduleStore
from shipyard.serve.metrics import HostMetrics
from shipyard.serve.supervisor import worker_env

if TYPE_CHECKING:
    from shipyard.serve.host import Host

log = logging.getLogger("shipyard.scheduler")

#: settings a run reads, passed on to scheduled runs besides the workers' allow-list
RUN_SETTINGS = (
    "SHIPYARD_RAY_ADDRESS",
    "SHIPYARD_PYPI_FIND_LINKS",
    "SHIPYARD_HEARTBEAT_SECONDS",
)
_THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def run_env(store_url: str) -> dict[str, str]:
    """The environment of a scheduled run started by the host: the workers' allow-list (so
    the gateway's provider keys and the host's other secrets never reach a flow), the store's
    credentials when it is on S3, and the run settings; the database URL is added by the
    launcher's spawn."""
    env = worker_env({}, store_url)
    for name in _THREADS:  # workers get one BLAS thread each; a flow's tasks decide
        if name not in os.environ:
            env.pop(name, None)
    env.update({k: v for k, v in os.environ.items() if k in RUN_SETTINGS})
    return env


def count_tick(metrics: HostMetrics, result: TickResult) -> None:
    """Count a tick's skipped and queued fire times (per schedule and reason) and the
    events it read (per source) in the host's metrics."""
    for schedule, status, reason in result.outcomes:
        counter = metrics.fires_skipped if status == "skipped" else metrics.fires_queued
        counter.labels(schedule, reason).inc()
    for source in result.events:
        metrics.events.labels(source).inc()


def attach_scheduler(host: Host, *, max_running: int = MAX_RUNNING) -> Scheduler:
    """Run a scheduler on ``host``'s metadata database for as long as the host runs."""
    stop = threading.Event()
    store = ScheduleStore(host.meta)
    store_url = host.blobs.url
    starter = Spawner(store, env=lambda: run_env(store_url))
    scheduler = Scheduler(
        store,
        max_running=max_running,
        announce=log.warning,
        starter=starter,
        observe=lambda result: count_tick(host.metrics, result),
    )
    thread = threading.Thread(
        target=scheduler.serve, args=(stop,), name="shipyard-scheduler", daemon=True
    )

    async def start() -> None:
        thread.start()

    def close() -> None:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=10)
        starter.close(timeout=1)  # stops the spawner; the runs it started keep going

    host.on_start.append(start)
    host.on_close.append(close)
    return scheduler


__all__ = ["RUN_SETTINGS", "attach_scheduler", "count_tick", "run_env"]
