"""Helpers for tests that need the servers scripts/services.sh starts."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa


def server_url(variable: str) -> str:
    """The URL a started server exported, or skip (fail under CI=true)."""
    url = os.environ.get(variable)
    if not url:
        message = f"{variable} is not set: run `source scripts/services.sh && services_start`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


def pg_schema_url(database: sa.URL) -> str:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(database, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        engine.dispose()
    url = database.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)
