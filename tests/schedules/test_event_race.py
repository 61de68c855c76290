"""Two schedulers racing on one PostgreSQL over many events and finished runs, published
while they tick: each (schedule, event) and (schedule, upstream run) ends as exactly one fire
record — zero duplicates, zero lost — and each record's run starts once. The lease is off,
so both read every event at the same moments; only the unique key, the cursors that pass an
id only once it has settled, and the claim tokens keep it to one."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from shipyard.schedules.feed import Feed
from shipyard.schedules.policies import Policies
from shipyard.schedules.records import FireRecord
from shipyard.schedules.scheduler import Scheduler
from shipyard.schedules.store import NewVersion, ScheduleStore
from shipyard.store.events import publish_event
from shipyard.store.meta import MetaStore
from shipyard.store.records import RunStatus
from shipyard.store.schema import events, schedule_fires, scheduler_cursors
from support.servers import pg_schema_url

pytestmark = pytest.mark.postgres

PER_PUBLISHER = 120
RUNS = 40


class Claims:
    """The launcher's first step only: take the claim with its token."""

    def __init__(self, store: ScheduleStore) -> None:
        self.store = store
        self.started: list[int] = []

    def __call__(self, fire: FireRecord, token: str) -> None:
        if self.store.start(fire.id, token, pid=1, now=datetime.now(UTC)):
            self.started.append(fire.id)


@pytest.fixture
def two_stores(pg_database: sa.URL) -> Iterator[tuple[ScheduleStore, ScheduleStore]]:
    url = pg_schema_url(pg_database)
    first, second = MetaStore.open(url), MetaStore.open(url)
    try:
        yield ScheduleStore(first), ScheduleStore(second)
    finally:
        first.close()
        second.close()


def _add(store: ScheduleStore, name: str, trigger: dict[str, object]) -> None:
    store.save(
        name,
        NewVersion(
            flow_name=f"{name}Flow",
            code_key="0" * 64,
            module="m",
            flow_file="m.py",
            parameters={"n": None},
            cron=None,
            timezone="UTC",
            triggers=[trigger],
            policies=Policies().merged(overlap="allow"),
        ),
        user="test",
        now=datetime.now(UTC),
    )


def test_two_schedulers_record_every_event_and_run_end_once(
    two_stores: tuple[ScheduleStore, ScheduleStore],
) -> None:
    store = two_stores[0]
    numbered = {"type": "event", "name": "e", "parameters": {"n": "n"}}
    for name in ("a", "b", "c"):
        _add(store, name, numbered)
    _add(store, "d", {"type": "event", "name": "e2", "parameters": {}})
    _add(store, "after", {"type": "flow", "flow": "UpFlow", "on": "any"})
    time.sleep(0.01)  # every event and run below is after the schedules

    starters = [Claims(s) for s in two_stores]
    schedulers = [
        Scheduler(
            s,
            starter=starter,
            holder=f"sched{i}",
            use_lease=False,
            max_running=100_000,
            feed=Feed(settle=timedelta(seconds=0.5), batch=50),
        )
        for i, (s, starter) in enumerate(zip(two_stores, starters, strict=True))
    ]
    published: list[tuple[int, str]] = []
    ended: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def publisher(meta: MetaStore, tag: int) -> None:
        try:
            for i in range(PER_PUBLISHER):
                name = ("e", "e2", "nobody")[i % 3]
                event, _ = publish_event(meta, name, {"n": i}, source="api", user=f"p{tag}")
                published.append((event.id, name))
        except BaseException as exc:
            errors.append(exc)

    def upstream(meta: MetaStore) -> None:
        try:
            for i in range(RUNS):
                run_id = meta.create_run(
                    "UpFlow", user="u", params={}, tags=[], graph={}, code_key=None
                )
                meta.finish_run(run_id, RunStatus.FAILED if i % 2 else RunStatus.SUCCEEDED)
                ended.append(run_id)
        except BaseException as exc:
            errors.append(exc)

    def ticking(sched: Scheduler) -> None:
        try:
            while not done.is_set():
                sched.tick()
        except BaseException as exc:
            errors.append(exc)

    producers = [
        threading.Thread(target=publisher, args=(two_stores[0].meta, 0)),
        threading.Thread(target=publisher, args=(two_stores[1].meta, 1)),
        threading.Thread(target=upstream, args=(two_stores[1].meta,)),
    ]
    consumers = [threading.Thread(target=ticking, args=(s,)) for s in schedulers]
    for thread in consumers + producers:
        thread.start()
    for thread in producers:
        thread.join()
    time.sleep(1.0)  # past the settle time: the cursors pass everything
    for sched in schedulers:
        sched.tick()
    done.set()
    for thread in consumers:
        thread.join()
    for sched in schedulers:  # one last tick each, nothing going on
        sched.tick()
    assert errors == []

    with store.reader.connect() as conn:
        rows = conn.execute(
            sa.select(schedule_fires.c.schedule, schedule_fires.c.event_id, schedule_fires.c.params)
        ).all()
        cursors = dict(
            conn.execute(sa.select(scheduler_cursors.c.name, scheduler_cursors.c.position)).all()
        )
        last_event = conn.execute(sa.select(sa.func.max(events.c.id))).scalar_one()
    keys = Counter((r.schedule, r.event_id) for r in rows)
    assert [k for k, n in keys.items() if n > 1] == []  # zero duplicates
    expected = {
        (schedule, f"event:{event_id}")
        for event_id, name in published
        for schedule in {"e": ("a", "b", "c"), "e2": ("d",), "nobody": ()}[name]
    } | {("after", f"run:{run_id}") for run_id in ended}
    assert set(keys) == expected  # zero lost, nothing extra
    assert len(expected) == 2 * PER_PUBLISHER // 3 * 4 + RUNS
    numbers = {r.event_id: r.params for r in rows if r.schedule == "a"}
    assert all(isinstance(p, dict) and isinstance(p["n"], int) for p in numbers.values())
    started = starters[0].started + starters[1].started
    assert len(started) == len(set(started)) == len(rows)  # each record started once
    assert cursors["events"] == last_event  # the cursor passed every event in the end
