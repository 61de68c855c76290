"""The local admin token file: created 0600 (home 0700), reused while its key verifies,
replaced when it does not, and refused when group or others may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shipyard.keys import (
    KeyStore,
    TokenFileError,
    ensure_admin_token,
    read_admin_token,
    token_path,
)
from shipyard.store.meta import MetaStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_token_is_created_private_and_is_an_admin_key(tmp_path: Path, keys: KeyStore) -> None:
    home = tmp_path / "new" / "home"
    assert read_admin_token(home) is None
    token = ensure_admin_token(home, keys)
    assert _mode(home) == 0o700  # we created it
    path = token_path(home)
    assert path == home / "admin.token" and _mode(path) == 0o600
    assert path.read_text() == token + "\n"
    assert read_admin_token(home) == token
    record = keys.verify(token)
    assert record is not None and record.scopes == ("admin",) and record.name == "admin token"
    assert [p.name for p in home.iterdir() if p.name.endswith(".tmp")] == []


def test_an_existing_home_keeps_its_mode(tmp_path: Path, keys: KeyStore) -> None:
    home = tmp_path / "existing"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    ensure_admin_token(home, keys)
    assert _mode(home) == 0o755
    assert _mode(token_path(home)) == 0o600


def test_token_is_reused_while_it_verifies(tmp_path: Path, keys: KeyStore) -> None:
    token = ensure_admin_token(tmp_path, keys)
    assert ensure_admin_token(tmp_path, keys) == token
    assert len(keys.list()) == 1


def test_a_revoked_or_foreign_token_is_replaced(tmp_path: Path, keys: KeyStore) -> None:
    token = ensure_admin_token(tmp_path, keys)
    keys.revoke(token.split("_", 2)[1])
    fresh = ensure_admin_token(tmp_path, keys)
    assert fresh != token and keys.verify(fresh) is not None
    assert read_admin_token(tmp_path) == fresh
    # a token of another database, or a non-admin key, is not an admin token here either
    _, ui_key = keys.create("ui", ["ui"])
    token_path(tmp_path).write_text(ui_key)
    replaced = ensure_admin_token(tmp_path, keys)
    assert replaced not in (ui_key, fresh)
    verified = keys.verify(replaced)
    assert verified is not None and verified.scopes == ("admin",)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_token_file_others_can_read_is_refused(tmp_path: Path, keys: KeyStore, mode: int) -> None:
    token = ensure_admin_token(tmp_path, keys)
    path = token_path(tmp_path)
    path.chmod(mode)
    for call in (lambda: read_admin_token(tmp_path), lambda: ensure_admin_token(tmp_path, keys)):
        with pytest.raises(TokenFileError, match=rf"{path}.*mode {mode:04o}.*chmod 600 {path}"):
            call()
    assert path.read_text().strip() == token  # left alone, not rewritten
    path.chmod(0o600)
    assert ensure_admin_token(tmp_path, keys) == token


def test_an_unreadable_token_file_is_a_clear_error(tmp_path: Path) -> None:
    token_path(tmp_path).mkdir()  # a directory where the file should be
    with pytest.raises(TokenFileError, match="cannot read the admin token"):
        read_admin_token(tmp_path)


def test_without_a_key_store_the_configured_database_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("SHIPYARD_DB_URL", db_url)
    home = tmp_path / "other-home"
    token = ensure_admin_token(home)
    with MetaStore.open(db_url) as meta, KeyStore(meta) as keys:
        assert keys.verify(token) is not None
    assert ensure_admin_token(home) == token
    assert os.stat(token_path(home)).st_mode & 0o077 == 0


def test_concurrent_callers_agree_on_one_token(tmp_path: Path, keys: KeyStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        tokens = set(pool.map(lambda _: ensure_admin_token(tmp_path, keys), range(4)))
    assert len(tokens) == 1
    assert len(keys.list()) == 1
