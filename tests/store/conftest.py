"""Fixtures for the metadata-store tests: every behaviour test runs on SQLite and PostgreSQL.

PostgreSQL comes from ``scripts/services.sh`` (``SHIPYARD_TEST_PG_URL``). Each test module
gets a fresh database and each test a fresh schema in it (via ``search_path``), so tests never
see each other's rows. Without the server the postgres cases skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from shipyard.store.meta import MetaStore


def _pg_admin_url() -> str:
    url = os.environ.get("SHIPYARD_TEST_PG_URL")
    if not url:
        message = "SHIPYARD_TEST_PG_URL is not set: start PostgreSQL with scripts/services.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="module")
def pg_database() -> Iterator[sa.URL]:
    """A fresh PostgreSQL database for this test module, dropped afterwards."""
    admin_url = _pg_admin_url()
    name = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sa.make_url(admin_url).set(database=name)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def _pg_schema_url(database: sa.URL) -> str:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        engine.dispose()
    url = database.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


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
    return _pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def meta(db_url: str) -> Iterator[MetaStore]:
    """An opened (migrated) store on ``db_url``."""
    store = MetaStore.open(db_url)
    try:
        yield store
    finally:
        store.close()
