"""Alembic migrations for the metadata database, shipped inside the package.

:class:`~shipyard.store.meta.MetaStore` runs them automatically when it opens a database
whose revision is not head; nothing here depends on the current directory or an
``alembic.ini`` (the configuration is built in code). Alembic is imported only when a
migration actually has to run, so opening an up-to-date store stays cheap.

To write a new revision (then bump ``schema.HEAD_REVISION`` and ``schema.py`` to match)::

    python -c "from shipyard.store import migrations; migrations.revision('add x')"
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.store.errors import MetaStoreError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

SCRIPT_LOCATION = Path(__file__).resolve().parent

#: PostgreSQL advisory lock key held while migrating (an arbitrary constant: "shipyard")
_PG_LOCK_KEY = 0x5348495059415244 & 0x7FFFFFFFFFFFFFFF


def config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for these scripts; ``connection`` is what env.py migrates."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")  # the modern setting; no legacy warning
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def current_revision(connection: Connection) -> str | None:
    """The database's revision from ``alembic_version`` (None: a new, empty database).

    One cheap query; run it on a connection of its own (a failed statement aborts a
    PostgreSQL transaction).
    """
    try:
        value = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.DBAPIError:
        connection.rollback()
        return None
    return str(value) if value is not None else None


def create_fresh(engine: Engine) -> bool:
    """On an EMPTY database, create the head schema straight from ``schema.py`` and stamp it
    (what Alembic recommends for new databases): no Alembic import and no replay of every
    revision, so a first run starts ~0.2 s sooner. Returns False, doing nothing, if the
    database has any table already (then :func:`upgrade` migrates it). Serialised like
    :func:`upgrade`: the process that waited finds the tables and returns False."""
    from shipyard.store import schema

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        existing = sa.inspect(connection).get_table_names()
        if existing:
            return False
        schema.metadata.create_all(connection)
        version = sa.Table(
            "alembic_version",
            sa.MetaData(),
            sa.Column("version_num", sa.String(32), primary_key=True),
        )
        version.create(connection)
        connection.execute(version.insert().values(version_num=schema.HEAD_REVISION))
    return True


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` in ONE transaction, safe against a concurrent
    upgrade by another process: SQLite's ``BEGIN IMMEDIATE`` (see ``engine.py``) and a
    PostgreSQL advisory lock serialise the upgraders, and the one that waited finds the
    database at head and does nothing."""
    from alembic import command
    from alembic.util import CommandError

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        try:
            command.upgrade(config(connection), revision)
        except CommandError as exc:
            url = engine.url.render_as_string(hide_password=True)
            raise MetaStoreError(
                f"cannot migrate the metadata database {url} to {revision!r}: {exc}. If it was "
                "written by a newer shipyard, upgrade shipyard (pip install -U shipyard)."
            ) from exc


def revision(message: str, **kwargs: Any) -> None:
    """Create a new revision script in ``versions/`` (for shipyard developers)."""
    from alembic import command

    command.revision(config(), message=message, **kwargs)


__all__ = ["SCRIPT_LOCATION", "config", "create_fresh", "current_revision", "revision", "upgrade"]
