"""Migration scripts, oldest first (``0001_...``); Alembic skips this ``__init__``.
Nothing here is public: the scripts are found by path, never imported by name."""

__all__: list[str] = []
