"""Fixtures for the metadata-store tests: every behaviour test runs on SQLite and PostgreSQL.

PostgreSQL comes from ``scripts/services.sh`` (``SHIPYARD_TEST_PG_URL``). Each test module
gets a fresh database and each test a fresh schema in it (via ``search_path``), so tests never
see each other's rows. Without the server the postgres cases skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from servers import pg_schema_url
from shipyard.store.meta import MetaStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(
    request: pytest.FixtureRequest, tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    """A URL of an empty metadata database: SQLite in tmp_path, or a fresh Postgres schema."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_HEARTBEAT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    if request.param == "sqlite":
        return f"sqlite:///{os.fspath(tmp_path)}/meta.db"
    return pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def meta(db_url: str) -> Iterator[MetaStore]:
    """An opened (migrated) store on ``db_url``."""
    store = MetaStore.open(db_url)
    try:
        yield store
    finally:
        store.close()
