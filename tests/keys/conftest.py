"""Fixtures for the key tests: a metadata store on SQLite and PostgreSQL and a KeyStore on it,
with the hand-moved ``clock`` (tests/conftest.py) that the cache TTL and the last-use
throttle read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.keys import KeyStore
from shipyard.store.meta import MetaStore
from support.clock import Clock


@pytest.fixture
def keys(meta: MetaStore, clock: Clock) -> Iterator[KeyStore]:
    store = KeyStore(meta, clock=clock)
    try:
        yield store
    finally:
        store.close()
