"""The scheduler inside the host (``shipyard serve``, on unless ``--no-scheduler``).

It ticks in a thread of its own (its database calls block), started once the host is up and
stopped before the host closes its store. Runs are never forked from the host (it has
threads and an event loop): each is a fresh ``python -m shipyard.schedules.launch`` process,
as the host's user. On a database another scheduler already ticks (a second host on the
same SQLite file, or one of several hosts on PostgreSQL), this one stands by, says so, and
takes over if that one stops renewing its lease.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from shipyard.schedules.scheduler import MAX_RUNNING, Scheduler
from shipyard.schedules.store import ScheduleStore

if TYPE_CHECKING:
    from shipyard.serve.host import Host

log = logging.getLogger("shipyard.scheduler")


def attach_scheduler(host: Host, *, max_running: int = MAX_RUNNING) -> Scheduler:
    """Run a scheduler on ``host``'s metadata database for as long as the host runs."""
    stop = threading.Event()
    scheduler = Scheduler(ScheduleStore(host.meta), max_running=max_running, announce=log.warning)
    thread = threading.Thread(
        target=scheduler.serve, args=(stop,), name="shipyard-scheduler", daemon=True
    )

    async def start() -> None:
        thread.start()

    def close() -> None:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=10)

    host.on_start.append(start)
    host.on_close.append(close)
    return scheduler


__all__ = ["attach_scheduler"]
