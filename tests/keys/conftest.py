"""Fixtures for the key tests: a metadata store on SQLite and PostgreSQL and a KeyStore on it,
with a clock the tests move by hand (the cache TTL and the last-use throttle read it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import pg_schema_url
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty metadata database: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "SHIPYARD_USER"):
        monkeypatch.delenv(name, raising=False)
    if request.param == "sqlite":
        return f"sqlite:///{os.fspath(tmp_path)}/meta.db"
    return pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def meta(db_url: str) -> Iterator[MetaStore]:
    store = MetaStore.open(db_url)
    try:
        yield store
    finally:
        store.close()


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
