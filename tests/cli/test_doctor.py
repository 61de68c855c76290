"""``shipyard doctor`` against real setups: a SQLite home, PostgreSQL migrated and not, a
database that does not answer, a read-only blob directory, S3, Redis up and down, and a home
whose permissions are too open. ``shipyard db upgrade`` is what its FAILs point to."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from shipyard.cli._doctor import judge_skew
from shipyard.cli.main import main
from shipyard.store import context as _stores
from support.redis_servers import closed_port_url, silent_port
from support.servers import pg_schema_url


@pytest.fixture(name="home")
def home_fixture(shipyard_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in (
        "SHIPYARD_DB_URL",
        "SHIPYARD_CACHE_URL",
        "SHIPYARD_EXECUTOR",
        "SHIPYARD_RAY_ADDRESS",
    ):
        monkeypatch.delenv(name, raising=False)
    _stores.reset()
    yield shipyard_home
    _stores.reset()


def doctor(*args: str) -> tuple[Result, dict[str, dict[str, Any]]]:
    """Run ``shipyard doctor --json``; the result and its checks by name."""
    result = CliRunner().invoke(main, ["doctor", "--json", *args])
    assert result.exit_code in (0, 1), result.output
    checks = {c["check"]: c for c in json.loads(result.stdout)["checks"]}
    return result, checks


def upgrade() -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output


def statuses(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


def test_a_fresh_sqlite_home_is_all_ok(home: Path) -> None:
    upgrade()
    result, checks = doctor()
    assert result.exit_code == 0
    assert statuses(checks) == {
        "home permissions": "OK",
        "secret meta.db": "OK",
        "database reachable": "OK",
        "database migrated": "OK",
        "database writable": "OK",
        "clock skew": "SKIP",
        "blob store": "OK",
        "cache": "OK",
        "ray": "SKIP",
    }
    assert all(c["ms"] >= 0 for c in checks.values())
    table = CliRunner().invoke(main, ["doctor"])
    assert table.exit_code == 0
    assert "0 failed" in table.output and " ms  " in table.output
    assert not any((home / "blobs").rglob("*[0-9a-f]" * 64))  # the probe blob is gone


@pytest.mark.postgres
def test_postgres_migrated_is_ok_and_the_write_probe_leaves_nothing(
    home: Path, pg_database: sa.URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_schema_url(pg_database)
    monkeypatch.setenv("SHIPYARD_DB_URL", url)
    upgrade()
    result, checks = doctor()
    assert result.exit_code == 0, result.output
    for name in ("database reachable", "database migrated", "database writable", "clock skew"):
        assert checks[name]["status"] == "OK", checks[name]
    assert "behind" in checks["clock skew"]["detail"] or "ahead" in checks["clock skew"]["detail"]
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM flows")).scalar_one() == 0
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_not_migrated_fails_naming_the_command(
    home: Path, pg_database: sa.URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_DB_URL", pg_schema_url(pg_database))
    result, checks = doctor()
    assert result.exit_code == 1
    assert checks["database migrated"]["status"] == "FAIL"
    assert "`shipyard db upgrade`" in checks["database migrated"]["fix"]
    assert checks["database writable"]["status"] == "SKIP"
    upgrade()  # the fix it names works
    result, checks = doctor()
    assert result.exit_code == 0 and checks["database migrated"]["status"] == "OK"


@pytest.mark.postgres
def test_an_older_revision_fails_naming_the_command(
    home: Path, pg_database: sa.URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_schema_url(pg_database)
    monkeypatch.setenv("SHIPYARD_DB_URL", url)
    upgrade()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0012'"))
    finally:
        engine.dispose()
    result, checks = doctor()
    assert result.exit_code == 1
    assert "at revision 0012" in checks["database migrated"]["detail"]
    assert "`shipyard db upgrade`" in checks["database migrated"]["fix"]


def test_a_database_that_never_answers_fails_within_the_timeout(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, _ = silent_port()  # accepts TCP connections, never says a word
    port = sock.getsockname()[1]
    try:
        monkeypatch.setenv(
            "SHIPYARD_DB_URL", f"postgresql+psycopg://ann:s3cret@127.0.0.1:{port}/db"
        )
        start = time.monotonic()
        result, checks = doctor("--timeout", "2")
        elapsed = time.monotonic() - start
    finally:
        sock.close()
    assert result.exit_code == 1
    assert elapsed < 10, elapsed
    check = checks["database reachable"]
    assert check["status"] == "FAIL"
    assert f"ann:***@127.0.0.1:{port}/db" in check["detail"]
    assert "s3cret" not in result.output
    assert "database migrated" not in checks  # nothing further to ask a database that is not there


def test_a_closed_database_port_fails_at_once(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port_url().split(":")[2].split("/")[0]
    monkeypatch.setenv("SHIPYARD_DB_URL", f"postgresql+psycopg://ann:s3cret@127.0.0.1:{port}/db")
    result, checks = doctor()
    assert result.exit_code == 1
    assert checks["database reachable"]["status"] == "FAIL"
    assert "SHIPYARD_DB_URL" in checks["database reachable"]["fix"]
    assert "s3cret" not in result.output


def _ignores_permissions() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 1))
    return os.geteuid() == 0


def test_a_read_only_blob_directory_fails(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = home.parent / "ro-blobs"
    blobs.mkdir()
    monkeypatch.setenv("SHIPYARD_STORE_URL", f"file://{blobs}")
    mounted = _ignores_permissions()  # root writes through 0500: mount a read-only tmpfs
    if mounted:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(blobs)], check=True
        )
    else:
        blobs.chmod(0o500)
    try:
        result, checks = doctor()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(blobs)], check=True)
        else:
            blobs.chmod(0o700)
    assert result.exit_code == 1
    check = checks["blob store"]
    assert check["status"] == "FAIL"
    assert "cannot write" in check["detail"] and str(blobs) in check["detail"]
    assert "writable" in check["fix"]


@pytest.mark.s3
def test_an_s3_bucket_is_written_read_and_deleted(
    home: Path, s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_STORE_URL", s3_url)
    result, checks = doctor()
    assert checks["blob store"]["status"] == "OK", checks["blob store"]
    import boto3

    bucket = s3_url.split("/")[2]
    client = boto3.session.Session().client(
        "s3", endpoint_url=os.environ["SHIPYARD_S3_ENDPOINT_URL"]
    )
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    monkeypatch.setenv("SHIPYARD_STORE_URL", "s3://no-such-bucket-shipyard-doctor/blobs")
    result, checks = doctor()
    assert result.exit_code == 1
    assert checks["blob store"]["status"] == "FAIL"
    assert "s3:PutObject" in checks["blob store"]["fix"]


def test_an_s3_endpoint_that_never_answers_fails_within_the_deadline(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, _ = silent_port()
    port = sock.getsockname()[1]
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home.parent / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home.parent / "no-aws-credentials"),
        "SHIPYARD_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "SHIPYARD_STORE_URL": "s3://bucket/blobs",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        start = time.monotonic()
        result, checks = doctor("--timeout", "0.5")
        elapsed = time.monotonic() - start
    finally:
        sock.close()
    assert result.exit_code == 1
    assert checks["blob store"]["status"] == "FAIL"
    assert checks["blob store"]["detail"] == "no answer within 1.5 s"
    assert "s3://bucket/blobs" in checks["blob store"]["fix"]
    assert elapsed < 5, elapsed


def test_redis_regions_up_and_down(
    home: Path, redis_urls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    down = closed_port_url()
    monkeypatch.setenv("SHIPYARD_CACHE_URL", ",".join([*redis_urls, down]))
    result, checks = doctor("--timeout", "1")
    assert result.exit_code == 1
    regions = [checks[f"cache region {i}"] for i in range(1, len(redis_urls) + 2)]
    assert [r["status"] for r in regions] == ["OK"] * len(redis_urls) + ["FAIL"]
    assert "PING" in regions[-1]["detail"] and down in regions[-1]["detail"]
    monkeypatch.setenv("SHIPYARD_CACHE_URL", ",".join(redis_urls))
    result, _ = doctor()
    assert result.exit_code == 0, result.output


def test_open_permissions_name_the_chmod(home: Path) -> None:
    upgrade()
    (home / "cache.key").write_bytes(b"not really a key")
    (home / "cache.key").chmod(0o644)
    home.chmod(0o755)
    result, checks = doctor()
    assert result.exit_code == 1
    assert checks["home permissions"]["status"] == "WARN"
    assert checks["home permissions"]["fix"] == f"chmod 700 {home}"
    assert checks["secret cache.key"]["status"] == "FAIL"
    assert checks["secret cache.key"]["fix"].startswith(f"chmod 600 {home / 'cache.key'}")


@pytest.mark.parametrize(
    ("skew", "status", "words"),
    [
        (0.2, "OK", "0.200 s behind"),
        (-1.5, "WARN", "1.500 s ahead of the database (more than 1 s)"),
        (31.0, "FAIL", "31.000 s behind the database (more than 30 s)"),
    ],
)
def test_clock_skew_thresholds(skew: float, status: str, words: str) -> None:
    verdict, detail, fix = judge_skew(skew)
    assert verdict.value == status and words in detail
    assert ("chrony" in fix) == (status != "OK")


def test_ray_is_checked_only_when_configured(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, checks = doctor()
    assert checks["ray"]["status"] == "SKIP"
    _, checks = doctor("--ray-address", "127.0.0.1:1")  # never contacted
    from importlib import metadata, util

    if util.find_spec("ray") is None:
        assert checks["ray"]["status"] == "FAIL" and "shipyard[ray]" in checks["ray"]["fix"]
    else:
        assert checks["ray"]["status"] == "OK"
        assert f"ray {metadata.version('ray')}" in checks["ray"]["detail"]
        assert "127.0.0.1:1" in checks["ray"]["detail"]
