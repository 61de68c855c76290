"""The servers scripts/services.sh starts, for the tests that need one.

A test whose server is missing skips (fails under CI=true) with a reason that starts with
:data:`MISSING`, so that :func:`missing_servers` can find those skips again and the run ends
with a summary naming them (``pytest_terminal_summary`` in tests/conftest.py): a fresh clone
should not report "92 skipped" with the reason only in an early warning line.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from typing import NoReturn

import pytest
import sqlalchemy as sa

#: the server behind each variable scripts/services.sh exports
SERVERS = {
    "SHIPYARD_TEST_CHROMIUM": "Chromium",
    "SHIPYARD_TEST_NGINX": "nginx",
    "SHIPYARD_TEST_PG_URL": "PostgreSQL",
    "SHIPYARD_TEST_REDIS_URLS": "Redis",
    "SHIPYARD_TEST_S3_ENDPOINT": "S3 (moto_server)",
}
#: how every missing-server skip reason starts: ``missing server: <name>: <why>; <fix>``
MISSING = "missing server: "
#: what starts them
FIX = "run `source scripts/services.sh && services_start` first, or `make test`"


def server_url(variable: str) -> str:
    """The URL a started server exported, or skip (fail under CI=true)."""
    url = os.environ.get(variable)
    if not url:
        missing_server(SERVERS.get(variable, variable), f"{variable} is not set")
    return url


def missing_server(server: str, why: str) -> NoReturn:
    """Skip the current test because ``server`` is not running (fail under CI=true, where
    scripts/services.sh must have started every server)."""
    message = f"{MISSING}{server}: {why}; {FIX}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def missing_servers(reports: Iterable[pytest.TestReport]) -> dict[str, list[str]]:
    """The tests skipped by :func:`missing_server` among ``reports``, by server name."""
    found: dict[str, list[str]] = {}
    for report in reports:
        if not (isinstance(report.longrepr, tuple) and len(report.longrepr) == 3):
            continue
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if reason.startswith(MISSING):
            server = reason.removeprefix(MISSING).split(":", 1)[0]
            tests = found.setdefault(server, [])
            if report.nodeid not in tests:
                tests.append(report.nodeid)
    return found


def pg_schema_url(database: sa.URL) -> str:
    """A fresh schema in ``database``, as a URL whose connections use it by default."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        engine.dispose()
    url = database.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)
