"""What shipyard keeps is its owner's alone: SHIPYARD_HOME 0700, the metadata database 0600
(with its -wal and -shm), blobs 0600 in 0700 directories — given at creation, so even a
umask of 0 opens nothing — and a home or database an older shipyard left open is tightened
(or, if someone else owns it, warned about with the fix)."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shipyard.config import home, keep_private
from shipyard.store.blobs import open_blob_store
from shipyard.store.bootstrap import IdReserver
from shipyard.store.meta import MetaStore


@pytest.fixture(autouse=True)
def _private_home(shipyard_home: Path) -> Path:
    """Settings never read the caller's own ~/.shipyard."""
    return shipyard_home


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _database_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _open_meta(path: Path) -> Callable[[], object]:
    def opened() -> object:
        store = MetaStore.open(f"sqlite:///{path}")
        store.create_run("F", user="u", params={}, tags=[], graph={}, code_key=None)
        return store

    return opened


def _open_reserver(path: Path) -> Callable[[], object]:
    def opened() -> object:
        reserver = IdReserver.open(f"sqlite:///{path}")
        assert reserver is not None
        reserver.reserve("runs", 1)
        return reserver

    return opened


OPENERS = {"MetaStore": _open_meta, "IdReserver": _open_reserver}


def test_a_new_home_is_created_0700_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "missing-parent" / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(target))
    with _umask(0):
        assert home() == target.resolve()
    assert _mode(target) == 0o700


def test_an_open_home_is_tightened_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "old-home"
    target.mkdir()
    target.chmod(0o755)  # what an older shipyard's mkdir left with the usual umask
    monkeypatch.setenv("SHIPYARD_HOME", str(target))
    with caplog.at_level(logging.WARNING, logger="shipyard"):
        home()
    assert _mode(target) == 0o700
    assert f"SHIPYARD_HOME {target} was open to group or others (mode 0755)" in caplog.text


def test_someone_elses_open_home_is_only_warned_about_with_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "shared"
    target.mkdir()
    target.chmod(0o750)
    with caplog.at_level(logging.WARNING, logger="shipyard"):
        keep_private(target, "SHIPYARD_HOME", uid=os.geteuid() + 1)  # owned by another user
    assert _mode(target) == 0o750
    assert f"run `chmod go-rwx {target}` as its owner" in caplog.text


@pytest.mark.parametrize("opener", sorted(OPENERS))
def test_a_new_database_is_created_0600_with_its_wal_and_shm(tmp_path: Path, opener: str) -> None:
    path = tmp_path / "meta.db"
    with _umask(0):  # no chmod after the fact could hide a window: a umask of 0 opens all
        handle = OPENERS[opener](path)()
    try:
        for file in _database_files(path):  # all three exist while it is open
            assert _mode(file) == 0o600, file
    finally:
        handle.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("opener", sorted(OPENERS))
def test_a_database_an_older_shipyard_left_open_is_tightened(
    tmp_path: Path, opener: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "meta.db"
    with _umask(0o022):  # an older shipyard: SQLite's own 0644, and its -wal and -shm too
        MetaStore.open(f"sqlite:///{path}").close()
        older = sqlite3.connect(path)
        older.execute("PRAGMA journal_mode = WAL")
        older.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
        for file in _database_files(path):
            file.chmod(0o644)
    try:
        with caplog.at_level(logging.WARNING, logger="shipyard"):
            handle = OPENERS[opener](path)()
        handle.close()  # type: ignore[attr-defined]
        for file in _database_files(path):
            assert _mode(file) == 0o600, file
        assert f"the metadata database {path} was open to group or others" in caplog.text
    finally:
        older.close()


def test_blobs_are_0600_in_0700_directories_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = open_blob_store(f"file://{root}")
    key = "ab" * 32
    with _umask(0):
        store.put(key, [b"weights"])
    assert _mode(root) == 0o700
    assert _mode(root / key[:2]) == 0o700
    assert _mode(root / key[:2] / key) == 0o600
    assert bytes(store.get(key)) == b"weights"
