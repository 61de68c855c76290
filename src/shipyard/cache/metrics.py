"""Prometheus metrics of the cache, in prometheus_client's default ``REGISTRY`` (so a host
serving ``/metrics`` from it, or ``generate_latest()``, includes them).

=========================================  ==============================================
``shipyard_cache_reads_total{namespace}``  keys asked for
``shipyard_cache_hits_total{namespace}``   keys found
``shipyard_cache_misses_total{namespace}`` keys absent from the live version
``shipyard_cache_defaults_served_total``   keys answered with the default because the
``{namespace,reason}``                     backend was ``unavailable`` or the namespace has
                                           ``no_version`` yet
``shipyard_cache_stale{namespace}``        1 while the live version is older than the
                                           namespace's ``max_age``
``shipyard_cache_live_age_seconds``        age of the live version, as last seen
``{namespace}``
``shipyard_cache_keys_written_total``      keys written by writers and bulk parts
``{namespace}``
``shipyard_cache_publishes_total``         versions published
``{namespace}``
=========================================  ==============================================

The replicated backend adds its own: ``shipyard_cache_fallbacks_total{region}`` (reads a
region could not serve that a later region served) and ``shipyard_cache_region_up{region}``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

READS = Counter("shipyard_cache_reads", "Cache keys asked for.", ["namespace"])
HITS = Counter("shipyard_cache_hits", "Cache keys found.", ["namespace"])
MISSES = Counter("shipyard_cache_misses", "Cache keys absent from the live version.", ["namespace"])
DEFAULTS = Counter(
    "shipyard_cache_defaults_served",
    "Cache keys answered with the default because the backend was unavailable or the "
    "namespace has no published version.",
    ["namespace", "reason"],
)
STALE = Gauge(
    "shipyard_cache_stale",
    "1 while the live version of the namespace is older than its max_age.",
    ["namespace"],
)
LIVE_AGE = Gauge(
    "shipyard_cache_live_age_seconds", "Age of the live version, as last seen.", ["namespace"]
)
KEYS_WRITTEN = Counter("shipyard_cache_keys_written", "Cache keys written.", ["namespace"])
PUBLISHES = Counter("shipyard_cache_publishes", "Cache versions published.", ["namespace"])

__all__ = [
    "DEFAULTS",
    "HITS",
    "KEYS_WRITTEN",
    "LIVE_AGE",
    "MISSES",
    "PUBLISHES",
    "READS",
    "STALE",
]
