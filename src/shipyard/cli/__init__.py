"""The ``shipyard`` command: one click group per part."""
