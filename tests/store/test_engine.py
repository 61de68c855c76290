"""The metadata store's public engines: ``MetaStore.writer`` takes SQLite's write lock up front,
``MetaStore.reader`` (and ``read_only``) reads a snapshot that never blocks a writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.store.engine import read_only
from shipyard.store.meta import MetaStore
from shipyard.store.schema import flows


@pytest.fixture
def sqlite_meta(tmp_path: Path) -> Iterator[tuple[MetaStore, Path]]:
    path = tmp_path / "meta.db"
    with MetaStore.open(f"sqlite:///{path}") as meta:
        yield meta, path


def _try_to_write(path: Path) -> None:
    """Take the write lock from another connection without waiting for it."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_writer_transaction_holds_the_write_lock_from_its_start(
    sqlite_meta: tuple[MetaStore, Path],
) -> None:
    meta, path = sqlite_meta
    with meta.writer.begin() as conn:
        conn.execute(sa.select(flows)).all()  # a read first: the lock is already taken
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            _try_to_write(path)


@pytest.mark.parametrize("how", ["MetaStore.reader", "read_only(MetaStore.writer)"])
def test_a_reader_transaction_never_blocks_a_writer(
    sqlite_meta: tuple[MetaStore, Path], how: str
) -> None:
    meta, path = sqlite_meta
    reader = meta.reader if how == "MetaStore.reader" else read_only(meta.writer)
    with reader.begin() as conn:
        conn.execute(sa.select(flows)).all()  # a snapshot is open
        _try_to_write(path)


def test_engine_is_the_writer(sqlite_meta: tuple[MetaStore, Path]) -> None:
    meta, _ = sqlite_meta
    assert meta.engine is meta.writer
    assert meta.reader.pool is meta.writer.pool  # one pool, two transaction modes
