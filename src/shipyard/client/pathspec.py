"""The pathspec grammar, now :mod:`shipyard.store.pathspec` (the registry and the CLI parse
pathspecs too); re-exported here so that imports from this module keep working."""

from __future__ import annotations

from shipyard.store.pathspec import FORM, Pathspec, parse, parse_artifact

__all__ = ["FORM", "Pathspec", "parse", "parse_artifact"]
