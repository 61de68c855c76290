"""The SQLAlchemy-free start on SQLite: the same schema, ids nobody else gets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shipyard.store import _schema_sqlite, schema
from shipyard.store.bootstrap import IdReserver, sqlite_file
from shipyard.store.meta import MetaStore


def _master(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        return [(kind, name, " ".join((sql or "").split())) for kind, name, sql in rows]


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_the_generated_statements_are_current() -> None:
    # if this fails: python -m shipyard.store.schema
    assert _schema_sqlite.STATEMENTS == tuple(schema.sqlite_statements())
    assert _schema_sqlite.REVISION == schema.HEAD_REVISION


def test_a_new_database_is_the_one_metastore_creates(tmp_path: Path) -> None:
    reserver = IdReserver.open(_url(tmp_path / "boot.db"))
    assert reserver is not None
    reserver.close()
    MetaStore.open(_url(tmp_path / "meta.db")).close()
    assert _master(tmp_path / "boot.db") == _master(tmp_path / "meta.db")
    with sqlite3.connect(tmp_path / "boot.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (schema.HEAD_REVISION,)
        ]
    with MetaStore.open(_url(tmp_path / "boot.db")) as meta:  # at head: used as it is
        run_id = meta.create_run("F", user="u", params={}, tags=[], graph={}, code_key=None)
        assert meta.get_run("F", run_id) is not None


def test_reserved_ids_are_never_handed_out_again(tmp_path: Path) -> None:
    url = _url(tmp_path / "meta.db")
    first = IdReserver.open(url)
    second = IdReserver.open(url)
    assert first is not None and second is not None
    run = first.reserve("runs", 1)
    a, b = first.reserve("tasks", 5), second.reserve("tasks", 3)
    assert (list(run), list(a), list(b)) == ([1], [1, 2, 3, 4, 5], [6, 7, 8])
    with MetaStore.open(url) as meta:
        run_id = meta.create_run(
            "F", user="u", params={}, tags=[], graph={}, code_key=None, run_id=run[0]
        )
        assert run_id == 1
        items = [("start", [], [], None), ("end", [], [], None)]
        assert meta.create_tasks(run_id, items, task_ids=[a[0], a[1]]) == [1, 2]
        assert meta.create_tasks(run_id, items) == [9, 10]  # after every reservation
        assert meta.create_run("F", user="u", params={}, tags=[], graph={}, code_key=None) == 2
        with pytest.raises(ValueError, match="2 tasks but 1 task ids"):
            meta.create_tasks(run_id, items, task_ids=[11])
    assert list(first.reserve("tasks", 2)) == [11, 12]
    first.close()
    second.close()


def test_an_unused_reservation_is_given_back_only_if_nothing_came_after(tmp_path: Path) -> None:
    url = _url(tmp_path / "meta.db")
    reserver = IdReserver.open(url)
    assert reserver is not None
    block = reserver.reserve("tasks", 10)
    reserver.give_back("tasks", block[3:])  # ids 4..10 were never written
    assert list(reserver.reserve("tasks", 2)) == [4, 5]
    later = reserver.reserve("tasks", 4)  # 6..9
    reserver.reserve("tasks", 1)  # someone reserved after it: 10
    reserver.give_back("tasks", later[1:])
    assert list(reserver.reserve("tasks", 1)) == [11]
    reserver.close()


def test_only_a_sqlite_file_at_head_is_bootstrapped(tmp_path: Path) -> None:
    assert sqlite_file("postgresql+psycopg://u@127.0.0.1/db") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("sqlite:///file:x?mode=memory&uri=true") is None
    assert sqlite_file(f"sqlite:///{tmp_path}/a%20b.db") == tmp_path / "a b.db"
    assert IdReserver.open("postgresql+psycopg://u@127.0.0.1/db") is None
    old = tmp_path / "old.db"
    MetaStore.open(_url(old)).close()
    with sqlite3.connect(old) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0005'")
    assert IdReserver.open(_url(old)) is None  # MetaStore.open migrates it first
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE mine (x INTEGER)")
    assert IdReserver.open(_url(other)) is None
