"""The scheduler remembers when each schedule is next due (so a tick does not walk every
cron again) and ``serve`` wakes for a fire time due before its next tick (bench/schedules.py
found both: a 1,000-schedule tick spent most of its CPU walking crons, and a fire time
waited up to a whole tick interval to be seen)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from shipyard.schedules.cron import Cron
from shipyard.schedules.plan import next_due
from shipyard.schedules.policies import Policies
from shipyard.schedules.scheduler import Scheduler
from shipyard.schedules.store import ScheduleStore
from support.schedules import T0, InProcessStarter, WallClock, add_schedule


def due_of(name: str, cron: str, jitter: int, cursor: datetime) -> datetime:
    due = next_due(name, Cron.parse(cron), "UTC", Policies(jitter=jitter), cursor)
    assert due is not None
    return due


def test_a_jittered_fire_time_is_recorded_at_its_due_instant_not_before(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    add_schedule(sched_store, "j", "*/5 * * * *", now=wall(), jitter=240)
    due = due_of("j", "*/5 * * * *", 240, T0)
    assert T0 + timedelta(minutes=5) <= due < T0 + timedelta(minutes=9)
    sched = Scheduler(sched_store, clock=wall, starter=InProcessStarter(sched_store, wall))
    for at in (T0 + timedelta(minutes=5, seconds=1), due - timedelta(milliseconds=1)):
        wall.at(at)
        assert sched.tick().recorded == 0
    wall.at(due)
    assert sched.tick().recorded == 1
    (fire,) = sched_store.fires("j")
    assert fire.due_at == due and fire.scheduled_for == T0 + timedelta(minutes=5)


def test_a_new_version_is_planned_at_once_not_at_the_old_versions_due_time(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    add_schedule(sched_store, "v", "0 * * * *", now=wall())  # next due at 13:00
    sched = Scheduler(sched_store, clock=wall, starter=InProcessStarter(sched_store, wall))
    wall.advance(seconds=30)
    assert sched.tick().recorded == 0  # remembers 13:00
    add_schedule(sched_store, "v", "* * * * *", now=wall())  # version 2: every minute
    wall.at(T0 + timedelta(minutes=1))
    assert sched.tick().recorded == 1
    assert [f.version for f in sched_store.fires("v")] == [2]


def test_serve_wakes_for_a_fire_time_due_before_its_next_tick(
    sched_store: ScheduleStore,
) -> None:
    start = WallClock(T0)
    add_schedule(sched_store, "soon", "*/5 * * * *", now=start(), jitter=240)
    due = due_of("soon", "*/5 * * * *", 240, T0)
    offset = due - timedelta(seconds=0.6) - datetime.now(UTC)  # 0.6 s before it is due

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    sched = Scheduler(sched_store, clock=clock, starter=InProcessStarter(sched_store, start))
    stop = threading.Event()
    # ticks aligned to the hour: without waking early, the next tick is ~50 min away
    thread = threading.Thread(target=sched.serve, args=(stop,), kwargs={"interval": 3600})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not sched_store.fires("soon") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    (fire,) = sched_store.fires("soon")
    assert fire.due_at == due
    assert fire.created_at >= due  # seen when due, not before
