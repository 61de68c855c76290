"""The last ``invoke`` (or ``ui``) key going away re-opens keyless loopback access: the guard
logs it once per turn, the request path notices it, and ``shipyard keys revoke`` says so
(issue 11, item 7)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shipyard.cli.main import main
from shipyard.keys import Guard, KeyStore, reopened_warning
from shipyard.keys.guard import INVOKE_CACHE_SECONDS
from support.clock import Clock

LOCAL = ("127.0.0.1", 50123)


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite, the default database of SHIPYARD_HOME, so the command sees the same keys."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_USER"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "home").mkdir()
    return f"sqlite:///{tmp_path}/home/meta.db"


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "shipyard.keys" and r.levelno == logging.WARNING
    ]


# --- the guard --------------------------------------------------------------------------------
def test_the_turn_to_no_keys_is_logged_once(
    keys: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    guard = Guard(keys)
    caplog.set_level(logging.INFO, logger="shipyard.keys")
    record, _ = keys.create("client", ["invoke:ranker"])
    assert guard.keys_exist("invoke:") and warnings(caplog) == []  # the first answer: quiet
    keys.revoke(record.key_id)
    assert not guard.keys_exist("invoke:")
    assert not guard.keys_exist("invoke:")
    assert warnings(caplog) == [reopened_warning("invoke:")]
    again, _ = keys.create("client", ["invoke:*"])
    assert guard.keys_exist("invoke:")
    assert any("keys exist again" in r.getMessage() for r in caplog.records)
    keys.revoke(again.key_id)
    assert not guard.keys_exist("invoke:")
    assert len(warnings(caplog)) == 2  # once per turn


def test_no_keys_from_the_start_is_not_a_turn(
    keys: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    guard = Guard(keys)
    assert not guard.keys_exist("invoke:") and not guard.keys_exist("ui")
    assert warnings(caplog) == []


def test_the_warning_names_what_opens_to_whom_and_the_fix() -> None:
    invoke = reopened_warning("invoke:")
    assert "'invoke'" in invoke and "service calls are open again" in invoke
    assert "loopback" in invoke and "shipyard keys create --scope 'invoke:*'" in invoke
    ui = reopened_warning("ui")
    assert "'ui'" in ui and "the UI's pages" in ui and "--scope ui" in ui


def test_the_request_path_notices_a_revocation_made_elsewhere(
    keys: KeyStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """As ``shipyard keys revoke`` does it: another KeyStore on the same database."""
    guard = Guard(keys, clock=clock)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "client": LOCAL,
    }
    record, _ = keys.create("client", ["invoke:ranker"])
    denied = guard.invoke_refusal(scope, "ranker")
    assert denied is not None and denied.status == 401
    with KeyStore(keys.meta) as elsewhere:
        elsewhere.revoke(record.key_id)
    clock.advance(max(keys.cache_ttl, INVOKE_CACHE_SECONDS) + 1)
    assert guard.invoke_refusal(scope, "ranker") is None  # open again ...
    assert warnings(caplog) == [reopened_warning("invoke:")]  # ... and said, once
    assert guard.invoke_refusal(scope, "ranker") is None
    assert len(warnings(caplog)) == 1


# --- the command ------------------------------------------------------------------------------
def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["keys", *args], catch_exceptions=False)


def create(*scopes: str) -> str:
    result = run("create", *(a for s in scopes for a in ("--scope", s)))
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[-1].split("_")[1]  # the prefix


def test_revoking_the_last_invoke_key_says_calls_are_open_again(db_url: str) -> None:
    ranker, anything, route = create("invoke:ranker"), create("invoke:*", "ui"), create("route:*")
    quiet = run("revoke", ranker)  # invoke:* is left
    assert quiet.exit_code == 0 and "revoked key" in quiet.stdout and quiet.stderr == ""
    assert run("revoke", route).stderr == ""  # route keys never open anything
    last = run("revoke", anything)
    assert last.exit_code == 0 and "revoked key" in last.stdout
    assert "Warning: " + reopened_warning("invoke:") in last.stderr
    assert reopened_warning("ui") in last.stderr  # it was the last ui key too
    assert run("revoke", anything).stderr == ""  # already revoked: nothing changes now


def test_revoking_a_key_while_another_invoke_key_exists_is_quiet(db_url: str) -> None:
    first, _ = create("invoke:a"), create("invoke:b")
    result = run("revoke", first)
    assert result.exit_code == 0 and "open again" not in result.output
