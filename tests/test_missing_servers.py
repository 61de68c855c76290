"""A run that skipped tests because a server was missing ends with a summary naming them,
by server, and how to start the servers (tests/conftest.py's ``pytest_terminal_summary``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.servers import SERVERS

TINY = """
import pytest
from support.servers import server_url


def test_redis():
    server_url("SHIPYARD_TEST_REDIS_URLS")


def test_pg(pg_database):
    pass


def test_s3_twice(s3_url):
    pass


def test_s3_again(s3_url):
    pass


def test_skipped_for_another_reason():
    pytest.skip("not about a server")


def test_plain():
    pass
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester directory with tests/conftest.py as its conftest and no server started."""
    for variable in SERVERS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    return pytester


def test_the_run_ends_naming_every_test_skipped_for_a_missing_server(
    run: pytest.Pytester,
) -> None:
    run.makepyfile(test_tiny=TINY)
    result = run.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=5)
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "servers missing" in line)
    assert lines[start].startswith("=") and "4 tests skipped: servers missing" in lines[start]
    assert lines[start + 1 : start + 10] == [
        "PostgreSQL is not running: 1 test skipped",
        "    test_tiny.py::test_pg",
        "Redis is not running: 1 test skipped",
        "    test_tiny.py::test_redis",
        "S3 (moto_server) is not running: 2 tests skipped",
        "    test_tiny.py::test_s3_twice",
        "    test_tiny.py::test_s3_again",
        "Start the servers and run again:",
        "    source scripts/services.sh && services_start   (or: make test)",
    ]
    assert "test_skipped_for_another_reason" not in "\n".join(lines[start:])


def test_a_run_with_no_server_skip_has_no_such_summary(run: pytest.Pytester) -> None:
    run.makepyfile(test_tiny=TINY.split("def test_redis")[0] + "def test_plain():\n    pass\n")
    result = run.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not any("servers missing" in line for line in result.outlines)
