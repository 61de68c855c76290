"""``Lookup``: a precomputed aggregate a feature reads (a profile's mean rating, a title's
popularity), and how stale it may be.

Online, a service fetches the aggregate (from the cache, a table, a feature store) and passes
it to ``FeatureSet.row(facts, lookups={"profile": {...}})``. Offline, ``FeatureSet.frame``
finds the same aggregate in its *history* - a table of its values over time, one row per
(key, ``as_of``) - with a point-in-time join.

The staleness contract, precisely. A lookup declares ``max_staleness``: a request at time
``ts`` may be served any value of the aggregate computed as of a time in
``[ts - max_staleness, ts]``. Offline, a row is joined to the latest history row of its key
whose ``as_of`` is at or before its *entitled time*:

- if the row carries the as-of time the service actually used (the column
  ``<lookup>.as_of``, which ``FeatureSet.row`` reads from the lookup's ``"as_of"`` field and
  a serving log keeps), the entitled time is ``max(that as-of, ts - max_staleness)``: a value
  fresh enough is recomputed exactly as served, and one staler than declared is recomputed
  as of the oldest time the service was entitled to, so only staleness *beyond the bound*
  shows up as a difference;
- otherwise it is ``ts - max_staleness``: the oldest value the service was entitled to.

A missing aggregate (no key online, no history row offline) is the lookup's ``default`` on
both paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shipyard.features.errors import FeatureDefinitionError

__all__ = ["Lookup"]


@dataclass(frozen=True)
class Lookup:
    """A precomputed aggregate keyed by the facts' field ``key``.

    >>> Lookup("profile_id", max_staleness=timedelta(hours=6), default={"rating_count": 0})
    Lookup(key='profile_id', max_staleness=datetime.timedelta(seconds=21600), ...)
    """

    key: str
    max_staleness: timedelta = timedelta(0)
    default: Mapping[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise FeatureDefinitionError(
                f"Lookup(key={self.key!r}): key names the facts' field holding the "
                "aggregate's key, e.g. Lookup('profile_id', ...)"
            )
        if not isinstance(self.max_staleness, timedelta) or self.max_staleness < timedelta(0):
            raise FeatureDefinitionError(
                f"Lookup({self.key!r}, max_staleness={self.max_staleness!r}): give a "
                "non-negative datetime.timedelta, e.g. timedelta(hours=6)"
            )
        if self.default is not None and not isinstance(self.default, Mapping):
            raise FeatureDefinitionError(
                f"Lookup({self.key!r}, default={self.default!r}): the default is a mapping "
                "of the aggregate's fields (or None)"
            )

    def describe(self) -> str:
        """What goes into the feature set's version."""
        default = sorted((str(k), repr(v)) for k, v in (self.default or {}).items())
        return f"{self.key}|{self.max_staleness.total_seconds()}|{default}"
