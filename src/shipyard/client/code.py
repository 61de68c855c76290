"""Code snapshots, now :mod:`shipyard.store.code` (they are stored as blobs, below the client
and the registry); re-exported here so that imports from this module keep working."""

from __future__ import annotations

from shipyard.store.code import MAX_CODE_BYTES, ClassFinder, extract_code, pack_code

__all__ = ["MAX_CODE_BYTES", "ClassFinder", "extract_code", "pack_code"]
