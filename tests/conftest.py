"""Fixtures every test package can use: a private SHIPYARD_HOME, a hand-moved clock, and the
servers that scripts/services.sh starts (PostgreSQL, an S3-compatible server, Redis through
the ``support.redis_servers`` plugin). A test that needs a server skips when it is not
running, except under CI=true, where that is a failure; a run with such skips ends with a
summary naming them and how to start the servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.store.meta import MetaStore
from support.clock import Clock
from support.servers import missing_servers, pg_schema_url, server_url

pytest_plugins = [
    "pytester",
    "support.blob_stores",
    "support.ray_cluster",
    "support.redis_servers",
]


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """tests/ray starts Ray: collected only inside the network namespace that
    tests/flow/test_ray_suite.py makes for it (SHIPYARD_RAY_NETNS=1)."""
    ray_dir = Path(__file__).parent / "ray"
    if collection_path == ray_dir and os.environ.get("SHIPYARD_RAY_NETNS") != "1":
        return True
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name every test skipped because its server was missing, by server, and the fix (the
    skips' reasons are otherwise easy to miss in a quiet run's "92 skipped")."""
    missing = missing_servers(terminalreporter.stats.get("skipped", []))
    if not missing:
        return
    total = sum(len(tests) for tests in missing.values())
    write = terminalreporter.write_line
    title = f"{_tests(total)} skipped: servers missing"
    terminalreporter.write_sep("=", title, red=True, bold=True)
    for server, tests in sorted(missing.items()):
        write(f"{server} is not running: {_tests(len(tests))} skipped", red=True, bold=True)
        for nodeid in tests:
            write(f"    {nodeid}")
    write("Start the servers and run again:", bold=True)
    write("    source scripts/services.sh && services_start   (or: make test)", bold=True)


def _tests(count: int) -> str:
    return f"{count} test" if count == 1 else f"{count} tests"


@pytest.fixture
def clock() -> Clock:
    """A monotonic clock at 1000.0 that only moves on ``clock.advance(seconds)``."""
    return Clock()


@pytest.fixture(name="shipyard_home")
def shipyard_home_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private SHIPYARD_HOME; no store URL from the caller's environment leaks in."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    return home


@pytest.fixture(name="s3_url")
def s3_url_fixture(shipyard_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://<fresh bucket>/blobs`` on the moto_server started by scripts/services.sh."""
    endpoint = server_url("SHIPYARD_TEST_S3_ENDPOINT")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(shipyard_home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(shipyard_home / "no-aws-credentials"),
        "SHIPYARD_S3_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    import boto3

    client = boto3.session.Session().client("s3", endpoint_url=endpoint)
    bucket = f"shipyard-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    yield f"s3://{bucket}/blobs"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def pg_database() -> Iterator[sa.URL]:
    """A fresh PostgreSQL database for this test module, dropped afterwards."""
    admin_url = server_url("SHIPYARD_TEST_PG_URL")
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty metadata database: SQLite in tmp_path, or a fresh PostgreSQL schema (the same
    behaviour tests run on both), with a private SHIPYARD_HOME and no inherited settings."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in (
        "SHIPYARD_DB_URL",
        "SHIPYARD_STORE_URL",
        "SHIPYARD_USER",
        "SHIPYARD_HEARTBEAT_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/meta.db"
    return pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def meta(db_url: str) -> Iterator[MetaStore]:
    """An opened (migrated) store on ``db_url``."""
    store = MetaStore.open(db_url)
    try:
        yield store
    finally:
        store.close()
