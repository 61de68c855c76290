"""Engine set-up for the metadata store: SQLite pragmas and locking, PostgreSQL pooling.

SQLite (the default) runs in WAL mode with ``synchronous=NORMAL`` (durable at checkpoints,
never corrupt), a 30 s busy timeout and foreign keys on. Write transactions start with
``BEGIN IMMEDIATE``: they take the write lock up front, so two writers queue on the busy
timeout instead of one failing with "database is locked" when it upgrades a read lock
mid-transaction. Readers (:func:`read_only`, :attr:`MetaStore.reader
<shipyard.store.meta.MetaStore.reader>`) get a plain deferred ``BEGIN`` (a WAL snapshot that
never blocks a writer). This is SQLAlchemy's documented pysqlite recipe:
sqlite3's own transaction handling is switched off (``isolation_level = None``) and the
``begin`` event emits our BEGIN.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from shipyard.store.bootstrap import BUSY_TIMEOUT_MS, configure

#: execution option marking a connection as read-only (SQLite: deferred BEGIN)
READ_OPTION = "shipyard_read"


_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _dispose_in_child() -> None:
    # A forked child must not use its parent's pooled connections (shared sockets/file
    # locks); drop them without closing what the parent still owns.
    for engine in list(_engines):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_dispose_in_child)


def read_only(engine: Engine) -> Engine:
    """``engine`` for reads: on SQLite its transactions start with a deferred ``BEGIN`` (a WAL
    snapshot that never blocks a writer) instead of ``BEGIN IMMEDIATE``.

    Holders of a :class:`~shipyard.store.meta.MetaStore` use ``meta.reader`` instead.

    >>> with read_only(meta.writer).connect() as conn:   # doctest: +SKIP
    ...     conn.execute(sa.select(runs)).all()
    """
    return engine.execution_options(**{READ_OPTION: True})


def create_engine(url: str) -> Engine:
    """An engine for ``url`` configured for the metadata store's access pattern."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(parsed)
    elif backend == "postgresql":
        engine = sa.create_engine(parsed, pool_pre_ping=True)
    else:
        raise ValueError(
            f"metadata database URL {parsed.render_as_string()!r}: unsupported backend "
            f"{backend!r}; use sqlite:///path/meta.db or postgresql+psycopg://user@host/db"
        )
    _engines.add(engine)
    return engine


@contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """Undo only what the block wrote if it raises, inside a transaction that goes on.

    Plain SQL rather than ``Connection.begin_nested()``: SQLAlchemy compiles each of its
    savepoint statements anew (they are never cached), which cost the runtime more than all
    of its other statements together. Nested blocks reuse the name, as SQL allows.
    """
    conn.exec_driver_sql("SAVEPOINT shipyard")
    try:
        yield
    except BaseException:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT shipyard")
        conn.exec_driver_sql("RELEASE SAVEPOINT shipyard")
        raise
    conn.exec_driver_sql("RELEASE SAVEPOINT shipyard")


def _sqlite_engine(url: sa.URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        configure(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


__all__ = ["READ_OPTION", "create_engine", "read_only", "savepoint"]
