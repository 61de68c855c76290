"""Alembic environment: migrate the connection handed over by ``migrations.upgrade``.

No URL, no ini file: the caller owns the connection and its transaction (which also holds
the migration lock), so this file only configures the context and runs the scripts.
"""

from __future__ import annotations

from alembic import context

from shipyard.store.schema import metadata

_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError(
        "shipyard's migrations run on a connection passed in code: use "
        "shipyard.store.migrations.upgrade(engine), not the alembic command line"
    )
if context.is_offline_mode():
    raise RuntimeError("shipyard's migrations do not support offline (--sql) mode")

context.configure(
    connection=_connection,
    target_metadata=metadata,
    render_as_batch=_connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
