"""``shipyard keys create/list/revoke`` through CliRunner, on a private SHIPYARD_HOME."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shipyard.cli.main import main
from shipyard.keys import KeyStore
from shipyard.store.meta import MetaStore

KEY = re.compile(r"sy_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(path))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("SHIPYARD_USER", "ann")
    monkeypatch.delenv("SHIPYARD_DB_URL", raising=False)
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["keys", *args], catch_exceptions=False)


def create(*args: str) -> str:
    result = run("create", *args)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[-1]


def test_create_prints_the_key_alone_on_the_last_line(home: Path) -> None:
    result = run("create", "--scope", "invoke:ranker", "--scope", "route:chat", "--name", "web",
                 "--expires", "30d")  # fmt: skip
    assert result.exit_code == 0, result.output
    *summary, last = result.output.splitlines()
    assert KEY.fullmatch(last)
    text = "\n".join(summary)
    assert "invoke:ranker, route:chat" in text and "web" in text and "not stored" in text
    assert last.split("_", 2)[2] not in text  # the secret is on the last line only
    with MetaStore.open() as meta, KeyStore(meta) as keys:
        record = keys.verify(last)
        assert record is not None and record.name == "web" and record.created_by == "ann"
        assert record.expires_at is not None
        assert 29.9 < (record.expires_at - record.created_at).total_seconds() / 86400 <= 30


def test_list_shows_keys_but_never_secrets(home: Path) -> None:
    first = create("--scope", "invoke:*", "--name", "batch")
    second = create("--scope", "ui", "--expires", "12h")
    result = run("list")
    assert result.exit_code == 0, result.output
    out = result.output
    for column in ("id", "name", "prefix", "scopes", "created", "expires", "last used"):
        assert column in out.splitlines()[0]
    assert first[:15] in out and second[:15] in out  # the sy_<prefix> labels
    for key in (first, second):
        assert key not in out and key.split("_", 2)[2] not in out
    assert "invoke:*" in out and "batch" in out and "never" in out

    rows = json.loads(run("list", "--json").output)
    assert [r["prefix"] for r in rows] == [first[:15], second[:15]]
    assert rows[0]["scopes"] == ["invoke:*"] and rows[0]["expires_at"] is None
    assert rows[1]["expires_at"] is not None and rows[0]["state"] == "active"
    assert "hash" not in rows[0] and first not in json.dumps(rows)


def test_revoke_by_prefix_or_id(home: Path) -> None:
    first = create("--scope", "ui")
    second = create("--scope", "ui")
    result = run("revoke", first[:15])
    assert result.exit_code == 0 and "revoked key 1" in result.output
    assert "within 5 s" in result.output
    assert "already revoked" in run("revoke", "1").output
    assert run("revoke", "2").exit_code == 0
    assert "no keys yet" in run("list").output
    listed = run("list", "--all").output
    assert "revoked" in listed.splitlines()[0] and first[:15] in listed and second[:15] in listed
    with MetaStore.open() as meta, KeyStore(meta) as keys:
        assert keys.verify(first) is None and keys.verify(second) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create"], "give at least one --scope"),
        (["create", "--scope", "invoke:Ranker"], "service name 'Ranker' is not valid"),
        (["create", "--scope", "deploy"], "unknown scope 'deploy'"),
        (["create", "--scope", "invoke:api"], "can never be a service name"),
        (["create", "--scope", "ui", "--expires", "soon"], "bad duration 'soon'"),
        (["revoke", "not-a-key"], "neither a key id nor a key prefix"),
        (["revoke"], "Missing argument"),
    ],
)
def test_usage_errors_exit_2_with_a_hint(home: Path, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_revoking_an_unknown_key_exits_1(home: Path) -> None:
    result = run("revoke", "sy_0123456789ab")
    assert result.exit_code == 1
    assert "no key with id or prefix 'sy_0123456789ab'" in result.output
    assert "shipyard keys list --all" in result.output


def test_revoke_by_the_whole_key_it_printed(home: Path) -> None:
    key = create("--scope", "route:chat")
    secret = key.split("_", 2)[2]
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    refused = run("revoke", wrong)  # the prefix exists, the rest is not that key's
    assert refused.exit_code == 1 and f"no key {key[:15]}_…" in refused.output
    assert secret[:-4] not in refused.output  # never echoed back
    result = run("revoke", key)
    assert result.exit_code == 0, result.output
    assert "revoked key 1" in result.output and secret not in result.output
    assert "already revoked" in run("revoke", key).output
    with MetaStore.open() as meta, KeyStore(meta) as keys:
        assert keys.verify(key) is None
    truncated = run("revoke", key[:-1])  # a key cut short is no key: said without its secret
    assert truncated.exit_code == 2 and "neither a key id nor a key prefix" in truncated.output
    assert secret[:-1] not in truncated.output
