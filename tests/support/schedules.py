"""Shared pieces of the schedule tests (tests/schedules): a clock the test moves,
schedules without a flow file, and a starter that takes claims in this process (the
launcher's first step) instead of spawning processes, so hours of schedules run in
milliseconds."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from shipyard.schedules.policies import Policies
from shipyard.schedules.records import FireRecord
from shipyard.schedules.store import NewVersion, ScheduleStore
from shipyard.store.records import RunStatus


class WallClock:
    """A UTC clock that moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def at(self, when: datetime) -> datetime:
        self.now = when
        return when


class InProcessStarter:
    """Takes each claim as the launcher would (:meth:`ScheduleStore.start` with the token)
    and records a RUNNING run of the schedule's flow linked to the fire record; ``finish``
    ends it."""

    def __init__(self, store: ScheduleStore, clock: WallClock, pid: int | None = None) -> None:
        self.store, self.clock, self.pid = store, clock, pid
        self.started: list[FireRecord] = []
        self.runs: dict[int, int] = {}  # fire id -> run id
        self.lost: list[int] = []  # claims another scheduler had taken over

    def __call__(self, fire: FireRecord, token: str) -> None:
        if not self.store.start(fire.id, token, pid=self.pid or os.getpid(), now=self.clock()):
            self.lost.append(fire.id)
            return
        run_id = self.store.meta.create_run(
            self.store.version(fire.schedule, fire.version).flow_name,
            user="test",
            params={},
            tags=[],
            graph={},
            code_key=None,
            trigger={"type": fire.kind.value, "fire_id": fire.id},
        )
        self.store.link_run(fire.id, run_id)
        self.runs[fire.id] = run_id
        self.started.append(fire)

    def finish(self, fire_id: int, ok: bool = True) -> None:
        status = RunStatus.SUCCEEDED if ok else RunStatus.FAILED
        self.store.meta.finish_run(self.runs[fire_id], status)
        self.store.finish(fire_id, 0 if ok else 1, now=self.clock())

    def finish_all(self) -> None:
        for fire_id in list(self.runs):
            if self.store.fire(fire_id).finished_at is None:
                self.finish(fire_id)


def add_schedule(
    store: ScheduleStore,
    name: str,
    cron: str | None,
    *,
    now: datetime,
    timezone: str = "UTC",
    parameters: dict[str, Any] | None = None,
    **policies: Any,
) -> int:
    return store.save(
        name,
        NewVersion(
            flow_name="TickFlow",
            code_key="0" * 64,
            module="tick_flow",
            flow_file="tick_flow.py",
            parameters=parameters or {},
            cron=cron,
            timezone=timezone,
            triggers=[],
            policies=Policies().merged(**policies),
        ),
        user="test",
        now=now,
    )


#: well before the real date, so runs' real heartbeats count as alive at the test's time
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
