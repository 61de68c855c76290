"""Fixtures for the key tests: a metadata store on SQLite and PostgreSQL and a KeyStore on it,
with a clock the tests move by hand (the cache TTL and the last-use throttle read it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.keys import KeyStore
from shipyard.store.meta import MetaStore


class Clock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(meta: MetaStore, clock: Clock) -> Iterator[KeyStore]:
    store = KeyStore(meta, clock=clock)
    try:
        yield store
    finally:
        store.close()
