"""The scheduler under missed ticks, overlaps, caps, pauses and a scheduler that dies, with
an injected clock (hours in milliseconds), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipyard.schedules.launch import _check_failures
from shipyard.schedules.records import FireKind, FireStatus
from shipyard.schedules.scheduler import Scheduler
from shipyard.schedules.store import ScheduleStore
from support.schedules import T0, InProcessStarter, WallClock, add_schedule


def scheduler(
    store: ScheduleStore, wall: WallClock, **kwargs: object
) -> tuple[Scheduler, InProcessStarter]:
    starter = kwargs.pop("starter", None) or InProcessStarter(store, wall)
    return Scheduler(store, clock=wall, starter=starter, **kwargs), starter  # type: ignore[arg-type]


def statuses(store: ScheduleStore, name: str) -> list[tuple[str, str | None]]:
    fires = sorted(store.fires(name, limit=1000), key=lambda f: f.scheduled_for or f.due_at)
    return [(f.status.value, f.reason) for f in fires]


def test_on_time_fire_times_run_once_each(sched_store: ScheduleStore, wall: WallClock) -> None:
    add_schedule(sched_store, "every5", "*/5 * * * *", now=wall(), overlap="allow")
    sched, starter = scheduler(sched_store, wall)
    for _ in range(12):  # an hour, a tick every minute
        wall.advance(minutes=1)
        sched.tick()
        sched.tick()  # a second tick at the same instant adds nothing
    fires = sched_store.fires("every5", limit=100)
    assert sorted(f.scheduled_for for f in fires) == [
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=10),
    ]
    assert [f.status for f in fires] == [FireStatus.STARTED] * 2
    assert len(starter.started) == 2
    run = sched_store.meta.get_run_by_id(starter.runs[fires[0].id])
    assert run is not None and run.trigger == {"type": "schedule", "fire_id": fires[0].id}


def test_catchup_latest_runs_only_the_newest_missed(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    add_schedule(sched_store, "s", "*/5 * * * *", now=wall())
    sched, starter = scheduler(sched_store, wall)
    wall.advance(minutes=62)  # 12 fire times, the newest two minutes late: all missed
    sched.tick()
    got = statuses(sched_store, "s")
    assert len(got) == 12
    assert got[-1] == ("started", None)
    assert (
        got[:-1]
        == [("skipped", "missed: catchup=latest runs only the newest missed fire time")] * 11
    )
    assert len(starter.started) == 1


def test_catchup_none_runs_no_missed_but_the_on_time_one(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    add_schedule(sched_store, "s", "*/5 * * * *", now=wall(), catchup="none")
    sched, starter = scheduler(sched_store, wall)
    wall.advance(minutes=60, seconds=30)  # the 60-minute fire time is 30 s old: on time
    sched.tick()
    got = statuses(sched_store, "s")
    assert got[:-1] == [("skipped", "missed: no scheduler ran at the time (catchup=none)")] * 11
    assert got[-1] == ("started", None)


def test_catchup_all_within_the_window_and_the_count(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    add_schedule(
        sched_store,
        "s",
        "*/10 * * * *",
        now=wall(),
        catchup="all",
        catchup_window="1h",
        catchup_max=3,
        overlap="allow",
    )
    sched, starter = scheduler(sched_store, wall)
    wall.advance(hours=2, minutes=5)  # 12 missed; 6 inside the last hour; 3 of them run
    sched.tick()
    got = statuses(sched_store, "s")
    assert [s for s, _ in got] == ["skipped"] * 9 + ["started"] * 3
    assert got[0][1] == "missed: older than the catch-up window (1h) when a scheduler saw it"
    assert got[7][1] == "missed: more than catchup_max=3 missed fire times"
    assert len(starter.started) == 3


def test_overlap_skip_queue_allow(sched_store: ScheduleStore, wall: WallClock) -> None:
    for name, overlap in [("skip", "skip"), ("queue", "queue"), ("allow", "allow")]:
        add_schedule(sched_store, name, "*/5 * * * *", now=wall(), overlap=overlap)
    sched, starter = scheduler(sched_store, wall)
    wall.advance(minutes=5)
    sched.tick()  # the first run of each starts, and keeps running
    wall.advance(minutes=5)
    sched.tick()
    first = {f.schedule: f for f in starter.started}
    run = lambda name: f"TickFlow/{starter.runs[first[name].id]}"  # noqa: E731
    assert statuses(sched_store, "skip")[1] == (
        "skipped",
        f"overlap=skip: {run('skip')} still running",
    )
    assert statuses(sched_store, "queue")[1] == (
        "queued",
        f"overlap=queue: waiting for {run('queue')}",
    )
    assert statuses(sched_store, "allow")[1] == ("started", None)
    starter.finish(first["queue"].id)  # the queued one starts when the previous run ends
    wall.advance(seconds=1)
    sched.tick()
    assert statuses(sched_store, "queue")[1] == (
        "started",
        f"waited: overlap=queue: waiting for {run('queue')}",
    )


def test_overlap_cancel_previous_asks_the_run_to_stop_and_waits_for_it(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    add_schedule(sched_store, "c", "*/5 * * * *", now=wall(), overlap="cancel-previous")
    sched, starter = scheduler(sched_store, wall)
    wall.advance(minutes=5)
    sched.tick()
    first = starter.started[0]
    wall.advance(minutes=5)
    sched.tick()  # the second asks the first's launcher (any host) to stop, and waits
    previous = f"TickFlow/{starter.runs[first.id]}"
    assert statuses(sched_store, "c") == [
        ("started", None),
        ("queued", f"overlap=cancel-previous: stopping {previous}"),
    ]
    assert sched_store.fire(first.id).cancel_requested_at == wall()
    assert sched_store.cancel_requested(first.id)
    wall.advance(seconds=1)
    sched.tick()  # still going: still waiting, the request kept as first made
    assert [s for s, _ in statuses(sched_store, "c")] == ["started", "queued"]
    assert sched_store.fire(first.id).cancel_requested_at == wall() - timedelta(seconds=1)
    starter.finish(first.id, ok=False)  # its launcher stopped it
    wall.advance(seconds=1)
    sched.tick()
    assert [s for s, _ in statuses(sched_store, "c")] == ["started", "started"]
    assert len(starter.started) == 2


def test_global_cap_queues_the_rest(sched_store: ScheduleStore, wall: WallClock) -> None:
    for i in range(3):
        add_schedule(sched_store, f"s{i}", "*/5 * * * *", now=wall())
    sched, starter = scheduler(sched_store, wall, max_running=2)
    wall.advance(minutes=5)
    sched.tick()
    got = sorted(s for n in ("s0", "s1", "s2") for s, _ in statuses(sched_store, n))
    assert got == ["queued", "started", "started"]
    queued = sched_store.fires(status=[FireStatus.QUEUED])[0]
    assert queued.reason == "global cap: 2 scheduled runs going (max_running=2)"
    starter.finish_all()
    wall.advance(seconds=1)
    sched.tick()
    started = sched_store.fire(queued.id)
    assert started.status == FireStatus.STARTED
    # the record keeps that it waited for the cap (the bench tells these apart)
    assert started.reason == "waited: global cap: 2 scheduled runs going (max_running=2)"


def test_pause_records_each_fire_time_as_skipped(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    add_schedule(sched_store, "p", "*/5 * * * *", now=wall(), overlap="allow")
    sched, starter = scheduler(sched_store, wall)
    note = "data source broken, see INC-12"
    sched_store.pause("p", note, user="ann", now=wall())
    for _ in range(30):  # half an hour, a tick a minute: each fire time one skip, no run
        wall.advance(minutes=1)
        sched.tick()
    assert statuses(sched_store, "p") == [("skipped", f"paused: {note}")] * 6
    assert starter.started == []
    assert sched_store.get("p").note == note
    # fire times passed while no scheduler ticked are recorded by resume itself
    wall.advance(minutes=12)  # 00:35 and 00:40
    sched_store.resume("p", now=wall())
    got = sorted(sched_store.fires("p", limit=100), key=lambda f: f.scheduled_for or T0)
    assert [f.scheduled_for for f in got] == [T0 + timedelta(minutes=5 * i) for i in range(1, 9)]
    assert {(f.status, f.reason) for f in got} == {(FireStatus.SKIPPED, f"paused: {note}")}
    wall.advance(minutes=3)  # 00:45 runs
    sched.tick()
    assert statuses(sched_store, "p")[-1] == ("started", None)
    assert len(sched_store.fires("p", limit=100)) == 9
    # paused with no scheduler at all, then resumed: still one record per fire time
    sched_store.pause("p", "again", user="ann", now=wall())
    wall.advance(hours=1)
    sched_store.resume("p", now=wall())
    assert statuses(sched_store, "p")[-12:] == [("skipped", "paused: again")] * 12


def test_pause_on_failure_pauses_with_the_reason_as_note(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    add_schedule(sched_store, "f", "*/5 * * * *", now=wall(), pause_on_failure=2, overlap="allow")
    sched, starter = scheduler(sched_store, wall)
    version = sched_store.get("f").current
    for _ in range(2):
        wall.advance(minutes=5)
        sched.tick()
        fire = starter.started[-1]
        starter.finish(fire.id, ok=False)
        assert not sched_store.get("f").paused or _ > 0
        _check_failures(sched_store, sched_store.fire(fire.id), version)
    record = sched_store.get("f")
    run = starter.runs[starter.started[-1].id]
    assert record.paused
    assert record.note == f"paused after 2 failed runs in a row (last: TickFlow/{run})"


def test_jitter_is_deterministic_and_delays_the_start(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    add_schedule(sched_store, "j", "0 * * * *", now=wall(), jitter=600)
    version = sched_store.get("j").current
    fire_time = T0 + timedelta(hours=1)
    delay = version.policies.jitter_for("j", fire_time)
    assert delay == version.policies.jitter_for("j", fire_time)
    assert timedelta(0) <= delay < timedelta(seconds=600)
    assert {version.policies.jitter_for(f"j{i}", fire_time) for i in range(20)} != {delay}
    sched, starter = scheduler(sched_store, wall)
    wall.at(fire_time + delay - timedelta(milliseconds=1))
    sched.tick()
    assert sched_store.fires("j") == []
    wall.at(fire_time + delay)
    sched.tick()
    (fire,) = sched_store.fires("j")
    assert fire.due_at == fire_time + delay and fire.status == FireStatus.STARTED


def test_a_scheduler_that_dies_after_claiming_leaves_it_to_the_next(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    # the lease runs out in the injected clock here (on PostgreSQL it is the database's
    # clock otherwise: test_cancel_lease_cap.py)
    sched_store = ScheduleStore(sched_store.meta, db_clock=False)
    add_schedule(sched_store, "d", "*/5 * * * *", now=wall())
    tokens: list[str] = []
    dead = Scheduler(
        sched_store, clock=wall, starter=lambda fire, token: tokens.append(token), holder="dead"
    )
    wall.advance(minutes=5)
    dead.tick()  # claimed; its process never starts (the scheduler died)
    (fire,) = sched_store.fires("d")
    assert fire.status == FireStatus.CLAIMED and fire.claimed_by == "dead"
    heir, starter = scheduler(sched_store, wall, holder="heir")
    wall.advance(seconds=20)
    heir.tick()  # the lease is still the dead one's
    assert sched_store.fire(fire.id).status == FireStatus.CLAIMED and not starter.started
    wall.advance(seconds=120)  # lease and claim expired
    heir.tick()
    assert [f.id for f in starter.started] == [fire.id]
    taken = sched_store.fire(fire.id)
    assert (
        taken.status == FireStatus.STARTED
        and taken.reason == "taken over from dead (claim expired)"
    )
    # the dead scheduler's process, arriving late with the old token, does not run it
    assert not sched_store.start(fire.id, tokens[0], pid=1, now=wall())
    assert len(sched_store.fires("d")) == 1


def test_lease_one_scheduler_ticks_and_the_other_takes_over(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    # the lease expires in the injected clock (db_clock=False; on PostgreSQL the database's
    # clock times it otherwise: test_cancel_lease_cap.py)
    sched_store = ScheduleStore(sched_store.meta, db_clock=False)
    add_schedule(sched_store, "l", "* * * * *", now=wall(), overlap="allow")
    a, started_a = scheduler(sched_store, wall, holder="a")
    b, started_b = scheduler(sched_store, wall, holder="b")
    wall.advance(minutes=1)
    assert a.tick().leader and not b.tick().leader
    wall.advance(minutes=1)  # a stopped renewing: its lease expired
    assert b.tick().leader and not a.tick().leader
    assert len(started_a.started) == 1 and len(started_b.started) == 1
    assert sched_store.lease() is not None and sched_store.lease()[0] == "b"  # type: ignore[index]


def test_manual_triggers_and_deleted_schedules(sched_store: ScheduleStore, wall: WallClock) -> None:
    from shipyard.schedules.manage import trigger_now

    add_schedule(sched_store, "m", None, now=wall(), parameters={"alpha": 0.5})
    sched, starter = scheduler(sched_store, wall)
    fire_id = trigger_now(sched_store, "m", {"alpha": "0.7"}, user="ann", now=wall())
    sched.tick()
    fire = sched_store.fire(fire_id)
    assert fire.kind == FireKind.MANUAL and fire.status == FireStatus.STARTED
    assert fire.params == {"alpha": "0.7"}
    second = trigger_now(sched_store, "m", {}, user="ann", now=wall())
    sched_store.delete("m", now=wall())
    sched.tick()
    assert sched_store.fire(second).status == FireStatus.SKIPPED
    assert sched_store.fire(second).reason == "the schedule was deleted"


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # 02:30 does not exist on 2026-03-29: it fires once, at 03:00 CEST (01:00 UTC)
        (
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            [(3, 28, 1, 30), (3, 29, 1, 0), (3, 30, 0, 30), (3, 31, 0, 30)],
        ),
        # 02:30 happens twice on 2026-10-25: it fires once, at its first (CEST, 00:30 UTC)
        (
            datetime(2026, 10, 23, 12, tzinfo=UTC),
            [(10, 24, 0, 30), (10, 25, 0, 30), (10, 26, 1, 30), (10, 27, 1, 30)],
        ),
    ],
)
def test_the_scheduler_through_daylight_saving_changes(
    sched_store: ScheduleStore, start: datetime, expected: list[tuple[int, int, int, int]]
) -> None:
    wall = WallClock(start)
    add_schedule(
        sched_store, "dst", "30 2 * * *", now=wall(), timezone="Europe/Amsterdam", overlap="allow"
    )
    sched, starter = scheduler(sched_store, wall)
    for _ in range(4 * 24 * 4):  # four days, a tick every 15 minutes
        wall.advance(minutes=15)
        sched.tick()
    fires = sorted(sched_store.fires("dst", limit=100), key=lambda f: f.due_at)
    assert [f.scheduled_for for f in fires] == [
        datetime(2026, m, d, h, mi, tzinfo=UTC) for m, d, h, mi in expected
    ]
    assert [f.status for f in fires] == [FireStatus.STARTED] * 4  # each on time, once


def test_updating_or_recreating_a_schedule_never_fires_a_time_twice(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    """Prefect's duplicates came from keys that changed with the schedule (its id, its
    parameters) and from a scheduler acting on a schedule read before an update; here the
    key is (schedule name, fire time) whatever the version."""
    add_schedule(sched_store, "u", "*/5 * * * *", now=wall(), overlap="allow")
    sched, starter = scheduler(sched_store, wall)
    wall.advance(minutes=5)
    stale = sched_store.get("u")  # what a slow scheduler read before the update
    sched.tick()
    add_schedule(sched_store, "u", "*/5 * * * *", now=wall(), overlap="allow", jitter=30)
    assert sched_store.get("u").version == 2
    sched.tick()
    # a scheduler still holding version 1 and the old cursor plans the same fire time again
    plan = sched._plan(stale, wall())
    assert plan is not None and not sched_store.advance([plan])
    sched_store.delete("u", now=wall())
    add_schedule(sched_store, "u", "*/5 * * * *", now=wall(), overlap="allow")  # re-created
    sched.tick()
    wall.advance(minutes=5, seconds=30)
    sched.tick()
    fires = sorted(sched_store.fires("u"), key=lambda f: f.due_at)
    assert [f.scheduled_for for f in fires] == [T0 + timedelta(minutes=m) for m in (5, 10)]
    assert [f.version for f in fires] == [1, 3]
    assert len(starter.started) == 2
