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
from shipyard.schedules.store import ScheduleCache, ScheduleStore
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


def test_serve_ticks_at_once_for_a_fire_time_that_fell_due_while_a_tick_ran(
    sched_store: ScheduleStore,
) -> None:
    """A tick that began just before a fire time was due and ended after it: the next tick
    comes at once, not at the next whole interval (a burst due on the second waited ~1 s)."""
    start = WallClock(T0)
    add_schedule(sched_store, "edge", "*/5 * * * *", now=start(), jitter=240)
    due = due_of("edge", "*/5 * * * *", 240, T0)
    offset = due - timedelta(seconds=0.05) - datetime.now(UTC)  # the first tick: 50 ms early

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    sched = Scheduler(
        sched_store,
        clock=clock,
        starter=InProcessStarter(sched_store, start),
        observe=lambda _result: time.sleep(0.3),  # each tick ends 0.3 s after it began
    )
    stop = threading.Event()
    thread = threading.Thread(target=sched.serve, args=(stop,), kwargs={"interval": 3600})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not sched_store.fires("edge") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    (fire,) = sched_store.fires("edge")
    assert due <= fire.created_at < due + timedelta(seconds=2)


def test_a_tick_reads_a_changed_schedule_again_and_keeps_the_others(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    """ScheduleStore.live: a pause, a new version, a moved cursor and a deletion are seen
    at the next read; an unchanged schedule's record is the one read before."""
    for name in ("a", "b", "c", "d"):
        add_schedule(sched_store, name, "0 * * * *", now=wall())
    cache = ScheduleCache()
    first = {r.name: r for r in sched_store.live(cache)}
    sched_store.pause("a", "feed broken", user="t", now=wall())
    add_schedule(sched_store, "b", "*/5 * * * *", now=wall())
    sched_store.advance([("c", first["c"].cursor, T0 + timedelta(hours=1), [])])
    sched_store.delete("d", now=wall())
    second = {r.name: r for r in sched_store.live(cache)}
    assert sorted(second) == ["a", "b", "c"]
    assert second["a"].paused and second["a"].note == "feed broken"
    assert second["b"].version == 2 and second["b"].current.cron == "*/5 * * * *"
    assert second["c"].cursor == T0 + timedelta(hours=1)
    assert [r.name for r in sched_store.live(cache)] == ["a", "b", "c"]
    assert all(sched_store.live(cache)[i] is second[n] for i, n in enumerate("abc"))
