"""The ``shipyard`` command: one click group per part.

Its surface is the command itself (``shipyard --help``), built by
:func:`shipyard.cli.main.main`; nothing here is for import.
"""

from __future__ import annotations

__all__: list[str] = []
