"""Two schedulers racing on one PostgreSQL: zero duplicates, zero lost fire times.

Each scheduler has its own connection pool (as two hosts would). With the lease off they
plan, claim and start the same fire times at the same moments, so only the unique keys,
``SKIP LOCKED`` and the claim tokens keep each fire time to one record and one start; with
the lease on and a short lease, leadership changes hands while they tick.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from shipyard.schedules.records import FireRecord, FireStatus
from shipyard.schedules.scheduler import Scheduler
from shipyard.schedules.store import ScheduleStore
from shipyard.store.meta import MetaStore
from support.schedules import T0, WallClock, add_schedule
from support.servers import pg_schema_url

pytestmark = pytest.mark.postgres

SCHEDULES = 5


class Claims:
    """The launcher's first step only (take the claim with its token): what must happen
    exactly once per fire time."""

    def __init__(self, store: ScheduleStore, wall: WallClock) -> None:
        self.store, self.wall = store, wall
        self.started: list[int] = []

    def __call__(self, fire: FireRecord, token: str) -> None:
        if self.store.start(fire.id, token, pid=1, now=self.wall()):
            self.started.append(fire.id)


@pytest.fixture
def two_stores(pg_database: sa.URL) -> Iterator[tuple[ScheduleStore, ScheduleStore]]:
    url = pg_schema_url(pg_database)
    first, second = MetaStore.open(url), MetaStore.open(url)
    try:
        # the leader's stalls are in the injected clock, so the lease is timed by it too
        # (db_clock=False); the database-clocked lease: test_cancel_lease_cap.py
        yield ScheduleStore(first, db_clock=False), ScheduleStore(second, db_clock=False)
    finally:
        first.close()
        second.close()


def race(stores: tuple[ScheduleStore, ScheduleStore], *, use_lease: bool, minutes: int) -> int:
    """Tick both schedulers at the same instants, two ticks a minute; returns the ticks."""
    wall = WallClock(T0)
    for i in range(SCHEDULES):
        add_schedule(stores[0], f"race{i}", "* * * * *", now=wall(), overlap="allow")
    starters = [Claims(s, wall) for s in stores]
    schedulers = [
        Scheduler(
            s,
            clock=wall,
            starter=starter,
            holder=f"sched{i}",
            use_lease=use_lease,
            lease_ttl=timedelta(seconds=30),
            max_running=10_000,
        )
        for i, (s, starter) in enumerate(zip(stores, starters, strict=True))
    ]
    errors: list[BaseException] = []
    leaders: list[str] = []
    ticks: list[str] = []
    for step in range(2 * minutes):
        wall.advance(seconds=30)
        # with the lease, the leader stalls (a long GC pause, a frozen VM) for two ticks in
        # ten: its lease runs out and the other one takes over
        ticking = schedulers
        if use_lease and step % 10 < 2 and leaders:
            ticking = [s for s in schedulers if s.holder != leaders[-1]]
        barrier = threading.Barrier(len(ticking))

        def tick(s: Scheduler, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                ticks.append(s.holder)
                if s.tick().leader:
                    leaders.append(s.holder)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=tick, args=(s,)) for s in ticking]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    fires = stores[0].fires(limit=100_000)
    keys = Counter((f.schedule, f.scheduled_for) for f in fires)
    expected = {
        (f"race{i}", T0 + timedelta(minutes=m))
        for i in range(SCHEDULES)
        for m in range(1, minutes + 1)
    }
    assert set(keys) == expected  # none lost
    assert max(keys.values()) == 1  # none twice
    assert {f.status for f in fires} == {FireStatus.STARTED}
    started = Counter(fire_id for s in starters for fire_id in s.started)
    assert len(started) == len(expected) and max(started.values()) == 1  # each started once
    if use_lease:
        handovers = sum(a != b for a, b in zip(leaders, leaders[1:], strict=False))
        assert handovers >= minutes // 10
    return len(ticks)


def test_two_schedulers_without_a_lease_never_duplicate_or_lose(
    two_stores: tuple[ScheduleStore, ScheduleStore],
) -> None:
    assert race(two_stores, use_lease=False, minutes=120) == 480  # ticks; 600 fire times


def test_two_schedulers_with_a_lease_hand_over_cleanly(
    two_stores: tuple[ScheduleStore, ScheduleStore],
) -> None:
    assert race(two_stores, use_lease=True, minutes=150) >= 540  # ticks; 750 fire times
