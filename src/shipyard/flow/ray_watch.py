"""Knowing, in bounded time, that the whole Ray cluster is gone.

When every node of the cluster is gone, Ray says little to a driver: a running task may end
with ``NodeDiedError``, a task not yet placed waits for ever, and after about a minute
without its GCS Ray ends the driver's process itself — the runtime with it, leaving the run
``running`` until its heartbeat goes stale. :class:`ClusterWatch` probes the cluster's GCS
(a TCP connect to its address, every :data:`PROBE_SECONDS`) on a thread of its own; once it
has refused or timed out for :data:`GRACE_SECONDS` in a row, ``lost`` is set and the runtime
fails the run with the cause named (``ClusterLost: the Ray cluster at ADDR stopped
answering``), long before Ray would end the process. Nothing is lost: every task that
succeeded wrote its artifacts to the blob store first, so ``shipyard resume`` on a new
cluster (or locally) reuses them.
"""

from __future__ import annotations

import socket
import threading
import time

PROBE_SECONDS = 0.5
GRACE_SECONDS = 3.0


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class ClusterWatch:
    """Probes the GCS at ``gcs_address`` (``HOST:PORT``) until :meth:`stop`; ``lost`` says
    whether it stopped answering for ``grace`` seconds. ``address`` is what the user gave,
    for the message."""

    def __init__(
        self,
        gcs_address: str,
        address: str | None = None,
        *,
        grace: float = GRACE_SECONDS,
        every: float = PROBE_SECONDS,
    ) -> None:
        self.gcs_address = gcs_address
        self.address = address or gcs_address
        self.grace, self.every = grace, every
        self._target = _split(gcs_address)
        self._stopped = threading.Event()
        self._lost = threading.Event()
        self.failing_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="ray-watch", daemon=True)
        self._thread.start()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def message(self) -> str:
        """The cause, as the run's and the attempts' records say it."""
        return (
            f"the Ray cluster at {self.address} stopped answering (its GCS at "
            f"{self.gcs_address} refused or timed out for {self.grace:g} s); every task that "
            "succeeded is kept: resume the run on another cluster or locally"
        )

    def answers(self) -> bool:
        """One probe now: does the GCS accept a connection?"""
        try:
            with socket.create_connection(self._target, timeout=max(self.every, 0.5)):
                return True
        except OSError:
            return False

    def confirm_lost(self) -> bool:
        """Probe for up to ``grace`` seconds (a task just died for a Ray reason): True if
        the GCS never answered, i.e. the cluster is gone, not one node."""
        if self.lost:
            return True
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            if self.answers():
                return False
            if self._stopped.wait(self.every):
                return False
        self._lost.set()
        return True

    def _run(self) -> None:
        while not self._stopped.wait(self.every):
            if self.answers():
                self.failing_since = None
                continue
            now = time.monotonic()
            if self.failing_since is None:
                self.failing_since = now
            elif now - self.failing_since >= self.grace:
                self._lost.set()
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)


__all__ = ["GRACE_SECONDS", "PROBE_SECONDS", "ClusterWatch"]
