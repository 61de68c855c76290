"""A run's first moments on SQLite, before SQLAlchemy is imported.

Importing SQLAlchemy takes ~0.1 s, longer than most of a short flow. With the default SQLite
store the runtime does not wait for it: :class:`IdReserver` opens the database with the
standard library's ``sqlite3``, creates the schema if the file is new (the statements
``schema.py`` compiles to, kept in ``_schema_sqlite.py``; a test checks that they agree) and
reserves ids (``sqlite_sequence``, which AUTOINCREMENT consults, so a reserved id is never
handed out to anyone else). The run's tasks start at once; the store opens in a thread and
the rows are written, with these ids, as soon as it is open (see ``flow/ledger.py``).

Anything else (PostgreSQL, an in-memory or URI database, a database that needs migrating)
gets ``None`` from :meth:`IdReserver.open`, and the runtime opens the store first, as usual.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

#: how long a writer waits for another one (SQLite's busy timeout)
BUSY_TIMEOUT_MS = 30_000
#: the id column of each table whose ids can be reserved
_ID_COLUMNS = {"runs": "run_id", "tasks": "task_id"}


def configure(connection: Any) -> None:
    """The pragmas every connection to the metadata database gets (a DB-API connection)."""
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL once per database file. Two processes creating the same new database
    can race here, and SQLite may answer "database is locked" without waiting on the busy
    timeout, so retry for as long as the busy timeout would have waited."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///path`` URL; None for any other kind of URL."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = unquote(url[len(prefix) :])
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path).expanduser()


def database_file(url: str) -> Path | None:
    """The file of any ``sqlite:///path[?query]`` URL; None for an in-memory or URI database
    or another backend."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    path = unquote(url[len(prefix) :].partition("?")[0])
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path).expanduser()


def private_database(path: Path) -> None:
    """Make the SQLite database at ``path`` readable by its owner alone (0600), before
    SQLite opens it: a new file is created empty with that mode (SQLite takes an empty file
    for a new database, and creates its ``-wal`` and ``-shm`` with the database's mode), so
    it is never open to others, not even for a moment. An existing one, written by an older
    shipyard with the umask's 0644, is tightened with its ``-wal`` and ``-shm`` (or warned
    about, if another user owns it: see :func:`shipyard.config.keep_private`)."""
    from shipyard.config import keep_private

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        return
    except FileExistsError:
        pass
    except OSError:  # a directory we may not write to: SQLite will say so when it opens
        return
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        keep_private(file, "the metadata database")


class IdReserver:
    """Reserves run and task ids in a SQLite metadata database (see the module docstring)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection

    @classmethod
    def open(cls, url: str) -> IdReserver | None:
        """Open (and on a new file, create) the database at ``url``; None if it is not a
        SQLite file at the schema's head revision (the caller opens the store instead)."""
        from shipyard.store import _schema_sqlite

        path = sqlite_file(url)
        if path is None:
            return None
        private_database(path)
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        head = [(_schema_sqlite.REVISION,)]
        try:
            configure(conn)
            with immediate(conn):
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
                if not tables:
                    for statement in _schema_sqlite.STATEMENTS:
                        conn.execute(statement)
                    conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", head[0])
                    at_head = True
                else:
                    at_head = (
                        "alembic_version" in tables
                        and head
                        == conn.execute("SELECT version_num FROM alembic_version").fetchall()
                    )
        except BaseException:
            conn.close()
            raise
        if not at_head:  # older (or newer): MetaStore.open migrates it, or says why not
            conn.close()
            return None
        return cls(conn)

    def reserve(self, table: str, count: int) -> range:
        """``count`` consecutive ids of ``table`` ("runs" or "tasks") nobody else will get."""
        column = _ID_COLUMNS[table]
        with immediate(self._conn):
            row = self._conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
            ).fetchone()
            top = self._conn.execute(f"SELECT max({column}) FROM {table}").fetchone()[0] or 0
            first = max(row[0] if row else 0, top) + 1
            last = first + count - 1
            if row is None:
                self._conn.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, last)
                )
            else:
                self._conn.execute(
                    "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (last, table)
                )
        return range(first, last + 1)

    def give_back(self, table: str, unused: range) -> None:
        """Return the unused end of a reservation, if nobody reserved or inserted after it
        (ids that were never written; the next run's ids then follow on without a gap)."""
        if unused:
            self._conn.execute(
                "UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq = ?",
                (unused.start - 1, table, unused.stop - 1),
            )

    def close(self) -> None:
        self._conn.close()


class immediate:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` if the block raises)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")


__all__ = [
    "BUSY_TIMEOUT_MS",
    "IdReserver",
    "configure",
    "database_file",
    "immediate",
    "private_database",
    "sqlite_file",
]
