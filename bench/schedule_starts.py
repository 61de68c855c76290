"""CPU per scheduled run start: N trivial runs through the real scheduler, started by the
spawner (a fork per fire, the run forked in-process) or by a fresh launcher process per fire
(``--no-fork``, then ``python -m shipyard run`` under it, as before the spawner).

    .venv/bin/python bench/schedule_starts.py --runs 30 [--no-fork]

Counts the CPU (user + system) of every process the scheduler started, when they have all
ended (``RUSAGE_CHILDREN``: the spawner waits for its launchers, each launcher for its run),
divided by the runs; the scheduler's own ticks are not in it. Fires are triggered in batches
of ``--batch`` so the runs do not queue behind the global cap.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

FLOW = """
from shipyard import FlowSpec, schedule, step


@schedule(cron="0 6 * * *")
class TickFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--no-fork", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="shipyard-bench-starts-"))
    os.environ["SHIPYARD_HOME"] = str(tmp / "home")
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        os.environ.pop(name, None)
    from shipyard.config import settings
    from shipyard.schedules.manage import create, trigger_now
    from shipyard.schedules.scheduler import Scheduler, Spawner
    from shipyard.schedules.store import ScheduleStore
    from shipyard.store.blobs import open_blob_store
    from shipyard.store.meta import MetaStore

    flow = tmp / "tick_flow.py"
    flow.write_text(FLOW)
    with MetaStore.open() as meta:
        store = ScheduleStore(meta)
        now = datetime.now(UTC)
        create(
            store, flow, name=None, user="b", now=now, blobs=open_blob_store(settings().store_url)
        )
        starter = Spawner(store, forking=not args.no_fork)
        sched = Scheduler(store, starter=starter)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.monotonic()
        fired: list[int] = []
        while len(fired) < args.runs:
            batch = [
                trigger_now(store, "TickFlow", {}, user="b", now=datetime.now(UTC))
                for _ in range(min(args.batch, args.runs - len(fired)))
            ]
            fired += batch
            while any(store.fire(f).exit_code is None for f in batch):
                sched.tick()
                time.sleep(0.1)
        elapsed = time.monotonic() - wall
        starter.close(timeout=30)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        failed = [f for f in fired if store.fire(f).exit_code != 0]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    how = "launcher process + python -m shipyard run" if args.no_fork else "spawner (forks)"
    print(
        f"{how}: {args.runs} runs in {elapsed:.1f} s, {cpu:.2f} CPU-s of started processes, "
        f"{cpu / args.runs * 1000:.0f} ms CPU per run; failed: {len(failed)}"
    )


if __name__ == "__main__":
    main()
