"""Fixtures of the schedule tests; the pieces they share are in support/schedules.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.schedules.store import ScheduleStore
from shipyard.store.meta import MetaStore
from support.schedules import T0, WallClock


@pytest.fixture
def wall() -> WallClock:
    return WallClock(T0)


@pytest.fixture
def sched_store(meta: MetaStore) -> Iterator[ScheduleStore]:
    yield ScheduleStore(meta)
