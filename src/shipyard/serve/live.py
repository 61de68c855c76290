"""Snapshots of the host's live state: frozen copies that another thread may read.

The event loop owns the supervisor's services and replicas and changes them between any two
awaits; a UI page runs in a worker thread. So the host hands out these copies, taken on the
loop (:meth:`~shipyard.serve.host.Host.live_services`), never its live objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the UI reads these snapshots without loading the supervisor
    from shipyard.serve.supervisor import ServiceGroup


@dataclass(frozen=True)
class ReplicaState:
    """One worker process of a service, when the snapshot was taken."""

    number: int
    pid: int | None
    ready: bool
    in_flight: int
    served: int

    def to_json(self) -> dict[str, object]:
        """The admin API's form (``live`` in ``GET /api/v1/deployments/{name}``)."""
        return {
            "number": self.number,
            "pid": self.pid,
            "ready": self.ready,
            "in_flight": self.in_flight,
            "served": self.served,
        }


@dataclass(frozen=True)
class ServiceState:
    """One live service: its running version, replicas and endpoints."""

    service: str
    version: int
    replicas: tuple[ReplicaState, ...]
    endpoints: tuple[str, ...]

    @property
    def ready(self) -> int:
        """How many replicas answer requests."""
        return sum(1 for r in self.replicas if r.ready)

    @property
    def starting(self) -> int:
        """How many replicas do not answer yet (starting, or restarting after a crash)."""
        return len(self.replicas) - self.ready


def service_state(service: str, group: ServiceGroup) -> ServiceState:
    """A snapshot of ``group``: call it on the event loop that owns it."""
    return ServiceState(
        service=service,
        version=group.spec.version,
        replicas=tuple(
            ReplicaState(r.number, r.pid, r.ready, len(r.in_flight), r.served)
            for r in group.replicas
        ),
        endpoints=tuple(sorted(group.endpoints)),
    )


__all__ = ["ReplicaState", "ServiceState", "service_state"]
