"""The precompute cache: versioned ``key -> value`` namespaces, published atomically and read
back in microseconds.

>>> from shipyard import cache                                # doctest: +SKIP
>>> with cache.writer("home-rows", meta={"model": "ranker:7"}) as w:
...     w.put_many({"p1": ["t3", "t9"], "p2": ["t1"]})
>>> rows = cache.reader("home-rows", lru=10_000)
>>> rows.get("p1", default=[])
['t3', 't9']
>>> cache.configure("home-rows", keep=5, max_age="6h")
>>> cache.rollback("home-rows")

Where it lives: ``SHIPYARD_CACHE_URL`` (default ``lmdb://$SHIPYARD_HOME/cache``; see
:mod:`shipyard.cache.backends`). Flows write one version from many shards with
:func:`bulk` (:mod:`shipyard.cache.bulk`).

Errors::

    CacheError                   anything the cache refuses or cannot do
    ├── BackendUnavailable       the backend cannot be reached (readers fall back instead)
    ├── InvalidName (ValueError) a bad namespace, key or setting
    ├── SigningKeyError          a signing or verifying key missing, malformed or of the old kind
    └── UntrustedValue           a stored pickle with a missing, wrong or old (HMAC) signature

Pickles are signed with an Ed25519 key pair: writers hold the private key, readers only the
public one (:mod:`shipyard.cache.signing`); ``shipyard cache migrate-signatures`` re-signs
values stored under the old shared HMAC key (:mod:`shipyard.cache.migration`).
"""

from __future__ import annotations

from shipyard.cache.admin import NamespaceStatus, configure, gc, rollback
from shipyard.cache.backends import open_backend
from shipyard.cache.backends.base import BackendUnavailable, CacheError, VersionInfo
from shipyard.cache.bulk import BulkVersion, Part, bulk
from shipyard.cache.codec import UntrustedValue
from shipyard.cache.namespaces import InvalidName, NamespaceSettings
from shipyard.cache.reader import Reader, reader
from shipyard.cache.signing import SigningKeyError
from shipyard.cache.writer import Writer, writer

__all__ = [
    "BackendUnavailable",
    "BulkVersion",
    "CacheError",
    "InvalidName",
    "NamespaceSettings",
    "NamespaceStatus",
    "Part",
    "Reader",
    "SigningKeyError",
    "UntrustedValue",
    "VersionInfo",
    "Writer",
    "bulk",
    "configure",
    "gc",
    "open_backend",
    "reader",
    "rollback",
    "writer",
]
