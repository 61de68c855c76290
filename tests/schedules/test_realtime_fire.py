"""One real-time test: a ``* * * * *`` schedule fires within its minute.

Real seconds pass, the scheduler ticks in its thread, the run is a real process from the
code snapshot. To keep it short, the scheduler's clock is the real clock shifted (by a fixed
offset) to two seconds before a minute boundary, so the test waits ~2 s, not up to 60.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipyard.client import Run
from shipyard.config import settings
from shipyard.schedules.manage import create
from shipyard.schedules.records import FireKind
from shipyard.schedules.scheduler import Scheduler
from shipyard.schedules.store import ScheduleStore
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore

FLOW = """
from shipyard import FlowSpec, current, schedule, step


@schedule(cron="* * * * *")
class MinuteFlow(FlowSpec):
    @step
    def start(self):
        self.scheduled_for = current.trigger.scheduled_for
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_every_minute_fires_within_its_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    flow = tmp_path / "minute_flow.py"
    flow.write_text(FLOW)
    real = datetime.now(UTC)
    boundary = (real + timedelta(minutes=2)).replace(second=0, microsecond=0)
    offset = boundary - timedelta(seconds=2) - real  # the shifted clock is 2 s short of it

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    with MetaStore.open() as meta:
        store = ScheduleStore(meta)
        create(
            store,
            flow,
            name=None,
            user="test",
            now=clock(),
            blobs=open_blob_store(settings().store_url),
        )
        scheduler = Scheduler(store, clock=clock)
        stop = threading.Event()
        thread = threading.Thread(target=scheduler.serve, args=(stop,), kwargs={"interval": 0.25})
        thread.start()
        try:
            crossed = time.monotonic() + 2  # real time at which the shifted clock crosses
            fire = None
            while time.monotonic() < crossed + 60:
                fires = store.fires("MinuteFlow")
                if fires and fires[0].run_id is not None and fires[0].exit_code is not None:
                    fire = fires[0]
                    break
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join()
            scheduler.starter.close()  # type: ignore[attr-defined]
        assert fire is not None, store.fires("MinuteFlow")
        assert fire.kind == FireKind.SCHEDULE and fire.scheduled_for == boundary
        assert fire.exit_code == 0
        assert fire.created_at - boundary < timedelta(seconds=60)  # recorded within its minute
        run = Run(f"MinuteFlow/{fire.run_id}")
        assert run.successful
        assert run["start"].task.data.scheduled_for == boundary
        # the run's process started (real time) within the minute of the (shifted) fire time
        assert run.created_at + offset - boundary < timedelta(seconds=60)
