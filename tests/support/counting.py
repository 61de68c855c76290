"""``Counting(backend)``: a cache backend that records when each read reached it, for tests
of the replicated backend's circuit breaker (did a read try the lost region at all?) that
count instead of timing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shipyard.cache.backends.base import Backend, VersionInfo


class Counting:
    """Delegates everything to ``backend``; ``reads`` holds the ``time.monotonic()`` at which
    each read (``live``, ``get_many``, ``versions``, ``namespaces``) started, on this backend
    or on its read-deadline twin."""

    def __init__(self, backend: Backend, reads: list[float] | None = None) -> None:
        self.backend = backend
        self.reads: list[float] = [] if reads is None else reads  # appends are atomic

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def with_read_timeout(self, seconds: float) -> Counting:
        """The twin the replicated backend reads through within its deadline, counted too."""
        return Counting(self.backend.with_read_timeout(seconds), self.reads)  # type: ignore[attr-defined]

    def live(self, namespace: str) -> str | None:
        self.reads.append(time.monotonic())
        return self.backend.live(namespace)

    def get_many(self, namespace: str, version: str, keys: Sequence[bytes]) -> list[bytes | None]:
        self.reads.append(time.monotonic())
        return self.backend.get_many(namespace, version, keys)

    def versions(self, namespace: str) -> list[VersionInfo]:
        self.reads.append(time.monotonic())
        return self.backend.versions(namespace)

    def namespaces(self) -> list[str]:
        self.reads.append(time.monotonic())
        return self.backend.namespaces()

    def reads_since(self, moment: float) -> int:
        """How many reads started after ``moment`` (``time.monotonic()``)."""
        return sum(1 for at in list(self.reads) if at > moment)
