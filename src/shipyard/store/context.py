"""The process-wide metadata and blob stores, opened lazily from the settings.

The client, the registry, cards and the CLI read through them when they are not handed stores
of their own. One pair per process (re-opened after a fork, or when the settings point
elsewhere, e.g. a test that changes ``SHIPYARD_HOME``). Nothing read through them is cached
here: runs may be in progress while they are read.

>>> stores = default_stores()                     # doctest: +SKIP
>>> stores.meta.get_run_by_id(3), stores.blobs.url  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from shipyard.config import settings
from shipyard.store.blobs import BlobStore, open_blob_store
from shipyard.store.meta import MetaStore


@dataclass(frozen=True)
class Stores:
    """The open stores and the settings they were opened from (what every client object
    holds)."""

    meta: MetaStore
    blobs: BlobStore
    home: Path
    db_url: str
    store_url: str
    pid: int


_lock = threading.Lock()
_current: Stores | None = None


def default_stores() -> Stores:
    """The stores for the current settings, opened on first use in this process."""
    global _current
    conf = settings()
    with _lock:
        cur = _current
        if (
            cur is not None
            and cur.pid == os.getpid()
            and (cur.db_url, cur.store_url, cur.home) == (conf.db_url, conf.store_url, conf.home)
        ):
            return cur
        if cur is not None and cur.pid == os.getpid():
            cur.meta.close()
        _current = Stores(
            meta=MetaStore.open(conf.db_url),
            blobs=open_blob_store(conf.store_url),
            home=conf.home,
            db_url=conf.db_url,
            store_url=conf.store_url,
            pid=os.getpid(),
        )
        return _current


def reset() -> None:
    """Close and forget the stores (tests; a long-lived process switching homes)."""
    global _current
    with _lock:
        if _current is not None and _current.pid == os.getpid():
            _current.meta.close()
        _current = None


__all__ = ["Stores", "default_stores", "reset"]
