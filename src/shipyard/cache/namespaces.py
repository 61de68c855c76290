"""Namespace names, keys, per-namespace settings (``keep``, ``max_age``) and version pruning.

Settings live *in the backend*, so that every region of a replicated cache and every machine
reading it agree without the metadata database: namespace ``NS``'s settings are the single key
``settings`` of the reserved namespace ``_settings.NS`` (names starting with ``_`` are never
user namespaces), written through the same begin/put/publish steps as data.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgpack

from shipyard.cache.backends import version_order
from shipyard.cache.backends.base import Backend, CacheError, VersionInfo
from shipyard.durations import parse_duration

NAME = re.compile(r"[a-z][a-z0-9._-]{0,62}")
SETTINGS_PREFIX = "_settings."
DEFAULT_KEEP = 3
#: a superseded version is dropped only after it has not been live for this long, so that a
#: reader still on it (readers re-check the live version every second or so) never reads a
#: half-deleted version
DROP_GRACE_SECONDS = 60.0
#: part markers of bulk loads (see ``shipyard.cache.bulk``); user keys may not start with NUL
RESERVED_KEY_PREFIX = b"\x00"


class InvalidName(CacheError, ValueError):
    """A namespace name, key or setting that is not allowed (a usage error)."""


def check_namespace(name: str) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidName(
            f"bad cache namespace {name!r}: use 1-63 characters of a-z, 0-9, '.', '_', '-', "
            "starting with a letter, e.g. 'home-rows'"
        )
    return name


def encode_key(namespace: str, key: str) -> bytes:
    if type(key) is not str:
        raise InvalidName(
            f"cache keys are str, got {type(key).__name__} {key!r} for namespace {namespace!r} "
            "(convert it, e.g. str(profile_id))"
        )
    data = key.encode()
    if data[:1] == RESERVED_KEY_PREFIX:
        raise InvalidName(f"cache keys may not start with NUL, got {key!r} in {namespace!r}")
    return data


def parse_max_age(value: str | float | timedelta | None) -> float | None:
    """``"6h"``, ``"1h30m"``, ``"2d"``, seconds or a timedelta -> seconds; ``None``/``"off"``
    -> no freshness limit."""
    if value is None or value == "off":
        return None
    try:
        seconds = parse_duration(value, what="max_age").total_seconds()
    except ValueError as exc:
        raise InvalidName(str(exc)) from None
    if seconds <= 0:
        raise InvalidName(f"max_age must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class NamespaceSettings:
    """A namespace's settings: versions kept, and the age past which the live one is stale."""

    keep: int = DEFAULT_KEEP
    max_age: float | None = None  # seconds

    def is_stale(self, info: VersionInfo | None, now: float | None = None) -> bool:
        if self.max_age is None or info is None:
            return False
        published = info.published_at or info.created_at
        return (now or time.time()) - published > self.max_age


def check_keep(keep: Any) -> int:
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidName(f"keep must be a whole number of versions >= 1, got {keep!r}")
    return keep


def read_settings(backend: Backend, namespace: str) -> NamespaceSettings:
    ns = SETTINGS_PREFIX + namespace
    live = backend.live(ns)
    if live is None:
        return NamespaceSettings()
    (raw,) = backend.get_many(ns, live, [b"settings"])
    if raw is None:
        return NamespaceSettings()
    values = msgpack.unpackb(raw)
    return NamespaceSettings(
        keep=int(values.get("keep", DEFAULT_KEEP)), max_age=values.get("max_age")
    )


def write_settings(backend: Backend, namespace: str, settings: NamespaceSettings) -> None:
    ns = SETTINGS_PREFIX + namespace
    version = backend.begin(ns, {})
    data = msgpack.packb({"keep": settings.keep, "max_age": settings.max_age})
    backend.put_many(ns, version, [(b"settings", data)])
    backend.publish(ns, version)
    for old in backend.versions(ns):
        if old.version != version:
            try:
                backend.drop(ns, old.version)
            except CacheError:
                pass  # someone else's settings just went live: theirs or ours wins, both fine


def user_namespaces(backend: Backend) -> list[str]:
    return sorted(n for n in backend.namespaces() if not n.startswith("_"))


def live_info(backend: Backend, namespace: str) -> tuple[VersionInfo | None, list[VersionInfo]]:
    """The live version's info (None if there is none) and all versions, oldest first."""
    live = backend.live(namespace)
    versions = backend.versions(namespace)
    return next((v for v in versions if v.version == live), None), versions


def prunable(
    versions: list[VersionInfo],
    live: str | None,
    keep: int,
    *,
    now: float | None = None,
    superseded: str | None = None,
    unpublished_after: float | None = None,
) -> list[VersionInfo]:
    """Which versions to drop: published ones beyond the newest ``keep`` that have not been
    live for ``DROP_GRACE_SECONDS`` (judged by when their successor was published; a commit
    passes the version it just ``superseded``, which is kept), and (if ``unpublished_after`` is
    given) unpublished ones begun more than that many seconds ago. Never the live version."""
    now = time.time() if now is None else now
    published = sorted(
        (v for v in versions if v.published_at is not None), key=lambda v: version_order(v.version)
    )
    drop: list[VersionInfo] = []
    for index, info in enumerate(published[: max(0, len(published) - keep)]):
        if info.version in (live, superseded):
            continue
        successor = published[index + 1]  # the version that replaced it
        if now - (successor.published_at or now) >= DROP_GRACE_SECONDS:
            drop.append(info)
    if unpublished_after is not None:
        drop.extend(
            v
            for v in versions
            if v.published_at is None
            and v.version != live
            and now - v.created_at > unpublished_after
        )
    return drop
