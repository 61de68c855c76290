"""Migration scripts, oldest first (``0001_...``); Alembic skips this ``__init__``."""
