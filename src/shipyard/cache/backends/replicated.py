"""The replicated cache backend: one namespace kept in several backends ("regions"), given as
a comma-separated ``SHIPYARD_CACHE_URL``, preferred first.

Writes (begin, put_many, publish, set_live, drop) go to every region, with the same version
id everywhere. Before publishing, every region is asked whether it holds the whole version (it
exists and has as many keys as the fullest region). By default (``degraded_ok=False``) a region
that cannot take the version fails the publish loudly with :class:`ReplicationError`, naming
the region and why, *before* any region moves its live pointer; so regions never silently serve
different data. With ``degraded_ok=True`` the publish goes ahead in the regions that can take it
and records in the version's meta ``{"degraded": True, "missing_regions": {region: why}}``.

Reads (live, get_many, versions, namespaces) go to the preferred healthy region and fall back
to the next one. Every region but the last one tried reads with a socket timeout of
``read_deadline_ms`` (a hung server costs a caller at most that); the last keeps its own longer
timeout, so a merely slow fallback still answers. A region that failed is skipped for
``retry_after_s`` (a circuit breaker), so reads do not pay the deadline again and again.
Fallbacks and region health are Prometheus metrics in the default registry:
``shipyard_cache_fallbacks_total{region}`` (reads the region could not serve, served by a later
one) and ``shipyard_cache_region_up{region}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge

from shipyard.cache.backends.base import Backend, BackendUnavailable, CacheError, VersionInfo

__all__ = ["FALLBACKS", "REGION_UP", "ReplicatedBackend", "ReplicationError"]

T = TypeVar("T")
#: rounds of picking a version id before :meth:`ReplicatedBackend.begin` gives up
_ID_ROUNDS = 5
log = logging.getLogger(__name__)

FALLBACKS = Counter(
    "shipyard_cache_fallbacks_total",
    "Cache reads this region could not serve (down, timed out, circuit open, or missing the "
    "version) that a later region served instead.",
    ["region"],
)
REGION_UP = Gauge(
    "shipyard_cache_region_up",
    "1 while the cache region answers reads, 0 while it is marked down (circuit open).",
    ["region"],
)


class ReplicationError(CacheError):
    """A write could not be applied in every region. ``failures`` maps each region that could
    not take it to the reason."""

    def __init__(self, message: str, failures: dict[str, str]) -> None:
        details = "; ".join(f"region {region}: {why}" for region, why in failures.items())
        super().__init__(f"{message}: {details}")
        self.failures = failures


class _Region:
    """One region: its backend, a twin reading within the deadline, and its breaker state."""

    def __init__(self, index: int, backend: Backend, deadline_s: float) -> None:
        self.index = index
        self.backend = backend
        self.name = backend.url
        twin = getattr(backend, "with_read_timeout", None)
        self.quick: Backend = twin(deadline_s) if callable(twin) else backend
        self.down_until = 0.0
        self.up = True
        self.versions_held: set[tuple[str, str]] = set()
        self.fallbacks = FALLBACKS.labels(self.name)
        self.up_gauge = REGION_UP.labels(self.name)
        self.up_gauge.set(1)


class ReplicatedBackend:
    """Several backends kept in step; reads from the first healthy one.

    >>> cache = ReplicatedBackend([RedisBackend(url_eu), RedisBackend(url_us)], read_deadline_ms=20)
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        read_deadline_ms: float = 20,
        retry_after_s: float = 1.0,
        degraded_ok: bool = False,
    ) -> None:
        if not backends:
            raise CacheError("a replicated cache needs at least one region (backend)")
        if read_deadline_ms <= 0:
            raise CacheError(f"read_deadline_ms={read_deadline_ms!r} must be positive")
        names = [b.url for b in backends]
        if len(set(names)) != len(names):
            raise CacheError(f"a replicated cache lists a region twice: {', '.join(names)}")
        self.url = ",".join(names)
        self.read_deadline_ms = read_deadline_ms
        self.retry_after_s = retry_after_s
        self.degraded_ok = degraded_ok
        self._regions = [_Region(i, b, read_deadline_ms / 1000) for i, b in enumerate(backends)]
        self._missed: dict[tuple[str, str], dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"ReplicatedBackend({self.url!r}, degraded_ok={self.degraded_ok})"

    @property
    def backends(self) -> list[Backend]:
        """The regions' backends, preferred first (maintenance such as the signature
        migration works on each region by itself)."""
        return [region.backend for region in self._regions]

    # -- health ---------------------------------------------------------------------------

    def _mark_down(self, region: _Region, exc: Exception) -> None:
        region.down_until = time.monotonic() + self.retry_after_s
        # It may come back restarted and empty (no persistence): check its versions again.
        region.versions_held.clear()
        if region.up:
            region.up = False
            region.up_gauge.set(0)
            log.warning("cache region %s is down, reading from the next one: %s", region.name, exc)

    def _mark_up(self, region: _Region) -> None:
        region.down_until = 0.0
        if not region.up:
            region.up = True
            region.up_gauge.set(1)
            log.warning("cache region %s is back up", region.name)

    def _read(
        self,
        what: str,
        call: Callable[[Backend, _Region], T],
        absent: Callable[[], T] | None = None,
    ) -> T:
        """``call`` on the preferred healthy region, falling back; ``absent()`` if every region
        answered but none holds what was asked."""
        now = time.monotonic()
        candidates = [r for r in self._regions if r.down_until <= now] or self._regions
        last = len(candidates) - 1
        failures: dict[str, str] = {}
        lacking: list[_Region] = []
        for position, region in enumerate(candidates):
            try:
                result = call(region.backend if position == last else region.quick, region)
            except BackendUnavailable as exc:
                self._mark_down(region, exc)
                failures[region.name] = str(exc)
                continue
            except _Lacks as exc:
                failures[region.name] = str(exc)
                lacking.append(region)
                continue
            if not region.up:
                self._mark_up(region)
            for skipped in self._regions[: region.index]:
                skipped.fallbacks.inc()
            return result
        if absent is not None and len(lacking) == len(failures):
            return absent()
        details = "; ".join(f"region {name}: {why}" for name, why in failures.items())
        raise BackendUnavailable(f"no cache region could {what}: {details}")

    # -- reading --------------------------------------------------------------------------

    def live(self, namespace: str) -> str | None:
        """The live version in the preferred healthy region that has one (a region that came
        back empty must not blank the namespace)."""

        def call(backend: Backend, region: _Region) -> str | None:
            version = backend.live(namespace)
            if version is None:
                raise _Lacks(f"has no live version of {namespace!r}")
            return version

        return self._read(f"say which version of {namespace!r} is live", call, lambda: None)

    def get_many(self, namespace: str, version: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values from the preferred healthy region that holds ``version``."""

        def call(backend: Backend, region: _Region) -> list[bytes | None]:
            if (namespace, version) not in region.versions_held:
                # Once per region and version: a region that missed a (degraded) publish must
                # not answer "absent" for every key of a version it does not have.
                if not any(
                    info.version == version and info.published_at is not None
                    for info in backend.versions(namespace)
                ):
                    raise _Lacks(f"does not hold published version {version} of {namespace!r}")
                region.versions_held.add((namespace, version))
            return backend.get_many(namespace, version, keys)

        return self._read(f"read version {version} of {namespace!r}", call)

    def versions(self, namespace: str) -> list[VersionInfo]:
        """The versions as the preferred healthy region knows them."""
        return self._read(
            f"list the versions of {namespace!r}", lambda backend, _: backend.versions(namespace)
        )

    def namespaces(self) -> list[str]:
        """The namespaces as the preferred healthy region knows them."""
        return self._read("list the namespaces", lambda backend, _: backend.namespaces())

    # -- writing --------------------------------------------------------------------------

    def _settle(self, what: str, failures: dict[str, str], succeeded: int) -> None:
        """Raise for ``failures`` unless degraded writes are allowed and some region took it."""
        if failures and (not self.degraded_ok or succeeded == 0):
            raise ReplicationError(f"cannot {what} in every region", failures)
        for region, why in failures.items():
            log.warning("cache region %s missed: %s (%s)", region, what, why)

    def begin(self, namespace: str, meta: dict[str, Any], version: str | None = None) -> str:
        """Begin the same version id in every region (the first region that answers picks it,
        unless ``version`` is given).

        A region restarted empty (no persistence) counts ids from 1 again, so the id it picks
        can be an old version in another region. Then the id is given up where this call began
        it, and the version is begun again, everywhere, with an id above every one any region
        holds (which also moves each region's counter past it); a concurrent writer taking
        that id first means one more round, at most :data:`_ID_ROUNDS`."""
        if version is not None:
            return self._begin(namespace, meta, version, picked=False)
        chosen: str | None = None
        for _ in range(_ID_ROUNDS):
            try:
                return self._begin(namespace, meta, chosen, picked=True)
            except _Taken as taken:
                self._give_up(namespace, taken.version, taken.began)
                chosen = self._next_id(namespace, taken.version)
        raise ReplicationError(
            f"cannot begin a version of {namespace!r}: {_ID_ROUNDS} version ids in a row were "
            "taken in some region by concurrent writers",
            {},
        )

    def _begin(
        self, namespace: str, meta: dict[str, Any], version: str | None, *, picked: bool
    ) -> str:
        """One round of :meth:`begin`; ``picked``: the id is this call's own choice (the first
        region's, or :meth:`_next_id`'s), so a region holding it already raises :class:`_Taken`
        instead of failing the write."""
        failures: dict[str, str] = {}
        began: list[_Region] = []
        for region in self._regions:
            try:
                if version is None:
                    got = region.backend.begin(namespace, meta)
                else:
                    got = region.backend.begin(namespace, meta, version=version)
            except BackendUnavailable as exc:
                failures[region.name] = str(exc)
                continue
            except CacheError as exc:  # the id is taken there
                if picked and version is not None:
                    raise _Taken(version, began) from exc
                failures[region.name] = str(exc)
                continue
            began.append(region)
            version = version or got
        if version is None:
            what = f"cannot begin a version of {namespace!r} in any region"
            raise ReplicationError(what, failures)
        self._settle(f"begin version {version} of {namespace!r}", failures, 1)
        if failures:
            self._missed.setdefault((namespace, version), {}).update(failures)
        return version

    def _give_up(self, namespace: str, version: str, began: list[_Region]) -> None:
        """Drop ``version`` (just begun, empty) from the regions where this call began it."""
        for region in began:
            try:
                region.backend.drop(namespace, version)
            except CacheError as exc:  # an empty unpublished version: gc drops it later
                log.warning("cannot give up version %s in %s: %s", version, region.name, exc)

    def _next_id(self, namespace: str, taken: str) -> str:
        """An id above ``taken`` and every version any reachable region holds."""
        highest = int(taken)
        for region in self._regions:
            try:
                held = region.backend.versions(namespace)
            except BackendUnavailable:
                continue
            highest = max([highest, *(int(info.version) for info in held)])
        return f"{highest + 1:06d}"

    def put_many(self, namespace: str, version: str, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Write ``items`` into every region (that has not already missed this version), in
        slices of 10,000 so a long iterator is never held in memory whole."""
        missed = self._missed.setdefault((namespace, version), {})
        iterator = iter(items)
        written = 0
        while chunk := list(islice(iterator, 10_000)):
            failures: dict[str, str] = {}
            for region in self._regions:
                if region.name in missed:
                    continue
                try:
                    region.backend.put_many(namespace, version, chunk)
                except BackendUnavailable as exc:
                    failures[region.name] = str(exc)
            self._settle(
                f"write to version {version} of {namespace!r}",
                failures,
                len(self._regions) - len(missed) - len(failures),
            )
            missed.update(failures)
            written += len(chunk)
        return written

    def publish(
        self, namespace: str, version: str, meta: dict[str, Any] | None = None
    ) -> VersionInfo:
        """Check that every region holds all of ``version``, then publish it in each."""
        missed = dict(self._missed.get((namespace, version), {}))
        held: dict[str, VersionInfo] = {}
        previous: dict[str, str | None] = {}
        for region in self._regions:
            if region.name in missed:
                continue
            try:
                found = [i for i in region.backend.versions(namespace) if i.version == version]
                previous[region.name] = region.backend.live(namespace)
            except BackendUnavailable as exc:
                missed[region.name] = str(exc)
                continue
            if not found:
                missed[region.name] = f"does not hold version {version} (begun elsewhere?)"
            else:
                held[region.name] = found[0]
        most = max((info.keys for info in held.values()), default=0)
        for name, info in held.items():
            if info.keys < most:
                missed[name] = f"holds {info.keys} of the {most} keys (a write to it failed)"
        what = f"publish version {version} of {namespace!r}"
        ready = [r for r in self._regions if r.name in held and r.name not in missed]
        self._settle(f"{what} (nothing was published)", missed, len(ready))
        extra = dict(meta or {})
        if missed:
            extra.update(degraded=True, missing_regions=dict(missed))
        done: list[tuple[_Region, VersionInfo]] = []
        for region in ready:
            try:
                done.append((region, region.backend.publish(namespace, version, extra or None)))
            except BackendUnavailable as exc:
                missed[region.name] = str(exc)
                if not self.degraded_ok:
                    undone = self._undo_publish(namespace, [r for r, _ in done], previous)
                    raise ReplicationError(
                        f"cannot {what} in every region ({undone})", missed
                    ) from exc
        if not done:
            raise ReplicationError(f"cannot {what} in any region", missed)
        if extra.get("missing_regions") != (missed or None):
            # A region failed between the check and its publish: record it where it landed.
            extra.update(degraded=True, missing_regions=dict(missed))
            for index, (region, _) in enumerate(done):
                try:
                    done[index] = (region, region.backend.publish(namespace, version, extra))
                except BackendUnavailable as exc:
                    log.warning("cannot mark %s degraded in %s: %s", version, region.name, exc)
        self._settle(what, missed, len(done))
        self._missed.pop((namespace, version), None)
        return done[0][1]

    def _undo_publish(
        self, namespace: str, regions: list[_Region], previous: dict[str, str | None]
    ) -> str:
        """Point ``regions`` back at their previous live version; say what happened."""
        notes = []
        for region in regions:
            before = previous.get(region.name)
            if before is None:
                notes.append(f"{region.name} had no live version before and keeps the new one")
                continue
            try:
                region.backend.set_live(namespace, before)
                notes.append(f"{region.name} rolled back to {before}")
            except CacheError as exc:
                notes.append(f"{region.name} could not roll back to {before}: {exc}")
        return "; ".join(notes) or "no region had published it yet"

    def _everywhere(self, what: str, call: Callable[[Backend], None]) -> None:
        failures: dict[str, str] = {}
        for region in self._regions:
            try:
                call(region.backend)
            except CacheError as exc:
                failures[region.name] = str(exc)
        self._settle(what, failures, len(self._regions) - len(failures))

    def set_live(self, namespace: str, version: str) -> None:
        """Point every region at ``version`` (rollback)."""
        self._everywhere(
            f"make version {version} of {namespace!r} live",
            lambda backend: backend.set_live(namespace, version),
        )

    def drop(self, namespace: str, version: str) -> None:
        """Drop ``version`` in every region."""
        self._everywhere(
            f"drop version {version} of {namespace!r}",
            lambda backend: backend.drop(namespace, version),
        )
        for region in self._regions:
            region.versions_held.discard((namespace, version))
        self._missed.pop((namespace, version), None)

    def scan(self, namespace: str, version: str) -> Iterator[list[tuple[bytes, bytes]]]:
        """The version's items as the first region that holds it has them (regions should
        agree; to check or fix every region, scan each of :attr:`backends`)."""
        failures: dict[str, str] = {}
        for region in self._regions:
            try:
                held = any(v.version == version for v in region.backend.versions(namespace))
            except BackendUnavailable as exc:
                failures[region.name] = str(exc)
                continue
            if held:
                yield from region.backend.scan(namespace, version)
                return
            failures[region.name] = f"does not hold version {version}"
        raise ReplicationError(f"cannot scan version {version} of {namespace!r}", failures)

    def replace_values(
        self, namespace: str, version: str, changes: Iterable[tuple[bytes, bytes, bytes]]
    ) -> int:
        """Compare-and-set in every region; returns the most replaced in any one."""
        listed = list(changes)
        counts: list[int] = []

        def call(backend: Backend) -> None:
            counts.append(backend.replace_values(namespace, version, listed))

        self._everywhere(f"rewrite values of version {version} of {namespace!r}", call)
        return max(counts, default=0)

    def close(self) -> None:
        """Close every region's connections."""
        for region in self._regions:
            region.backend.close()
            if region.quick is not region.backend:
                region.quick.close()


class _Taken(CacheError):
    """The version id a begin picked is already a version in some region."""

    def __init__(self, version: str, began: list[_Region]) -> None:
        super().__init__(f"version {version} exists already in some region")
        self.version = version
        self.began = began


class _Lacks(CacheError):
    """A region is up but does not hold the version asked for."""
