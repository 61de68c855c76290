"""Desired deployments, kept in the metadata database so a restarted host restores them and
every host sharing the database follows them (:mod:`shipyard.serve.reconcile`).

A deployment is a service name with an ordered history of versions; each version records the
code snapshot (a blob key), the entry point, the environment, its secrets (as references:
``env:VAR`` or ``file:PATH``, never values; see :mod:`shipyard.serve.secrets`), the replica
count, each replica's memory limit (``--memory``) and the model versions it pinned. Exactly
one version is current; ``rollback`` makes the previous live one current again.

A version deployed by the development loop (``shipyard serve FILE.py:Class``) is marked
``dev``: a later host start does not restore a deployment whose current version is one
(:meth:`DeploymentStore.set_aside_dev`), while a plain ``deploy`` of the same service, a
version of its own, is restored as any other.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from shipyard.store.meta import MetaStore
from shipyard.store.schema import deployment_versions, deployments


class VersionStatus(enum.StrEnum):
    DEPLOYING = "deploying"
    LIVE = "live"
    FAILED = "failed"
    RETIRED = "retired"


@dataclass(frozen=True)
class DeploymentVersion:
    service: str
    version: int
    entry: str
    code_key: str
    replicas: int
    env: dict[str, str]
    pins: dict[str, str]
    status: VersionStatus
    message: str | None
    created_at: datetime
    created_by: str
    #: name -> reference (``env:VAR`` / ``file:PATH``): what the host resolves at worker start
    secrets: dict[str, str] = field(default_factory=dict)
    #: each replica's memory limit in bytes (None: none)
    memory: int | None = None
    #: deployed by the development loop: not restored at the next host start
    dev: bool = False
    #: ``deploy --on ray``: {"min_replicas", "max_replicas", "target_ongoing", "cpus"}
    ray: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "version": self.version,
            "entry": self.entry,
            "code_key": self.code_key,
            "replicas": self.replicas,
            "memory": self.memory,
            "dev": self.dev,
            "on": "ray" if self.ray is not None else "host",
            "ray": dict(self.ray) if self.ray is not None else None,
            "env": sorted(self.env),  # names only: values may be sensitive
            "secrets": dict(self.secrets),  # references, never values
            "pins": self.pins,
            "status": self.status.value,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class Deployment:
    service: str
    current_version: int | None
    replicas: int
    active: bool
    updated_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _version(row: Any) -> DeploymentVersion:
    return DeploymentVersion(
        service=row.service,
        version=row.version,
        entry=row.entry,
        code_key=row.code_key,
        replicas=row.replicas,
        env=dict(row.env or {}),
        secrets=dict(row.secrets or {}),
        memory=row.memory,
        dev=bool(row.dev),
        ray=dict(row.ray) if row.ray else None,
        pins=dict(row.pins or {}),
        status=VersionStatus(row.status),
        message=row.message,
        created_at=row.created_at,
        created_by=row.created_by,
    )


class DeploymentStore:
    """Read and write the desired state."""

    def __init__(self, meta: MetaStore) -> None:
        self.engine = meta.engine

    def add_version(
        self,
        service: str,
        *,
        entry: str,
        code_key: str,
        replicas: int,
        env: dict[str, str],
        pins: dict[str, str],
        created_by: str,
        secrets: dict[str, str] | None = None,
        memory: int | None = None,
        dev: bool = False,
        ray: dict[str, Any] | None = None,
    ) -> DeploymentVersion:
        """Record a new version (status DEPLOYING) and return it. ``secrets`` maps names to
        references (checked by the caller); only the references are stored. ``memory``: each
        replica's limit in bytes; ``dev``: deployed by the development loop."""
        with self.engine.begin() as conn:
            last = conn.execute(
                sa.select(sa.func.max(deployment_versions.c.version)).where(
                    deployment_versions.c.service == service
                )
            ).scalar()
            version = DeploymentVersion(
                service=service,
                version=int(last or 0) + 1,
                entry=entry,
                code_key=code_key,
                replicas=replicas,
                env=env,
                pins=pins,
                status=VersionStatus.DEPLOYING,
                secrets=dict(secrets or {}),
                memory=memory,
                dev=dev,
                ray=ray,
                message=None,
                created_at=_now(),
                created_by=created_by,
            )
            conn.execute(
                deployment_versions.insert().values(
                    **{**version.__dict__, "status": version.status.value}
                )
            )
        return version

    def mark(
        self,
        service: str,
        version: int,
        status: VersionStatus,
        message: str | None = None,
        *,
        pins: dict[str, str] | None = None,
    ) -> None:
        """Set a version's status; LIVE also makes it current (retiring the one before)."""
        with self.engine.begin() as conn:
            values: dict[str, Any] = {"status": status.value, "message": message}
            if pins is not None:
                values["pins"] = pins
            conn.execute(
                deployment_versions.update()
                .where(
                    deployment_versions.c.service == service,
                    deployment_versions.c.version == version,
                )
                .values(**values)
            )
            if status is VersionStatus.LIVE:
                conn.execute(
                    deployment_versions.update()
                    .where(
                        deployment_versions.c.service == service,
                        deployment_versions.c.version != version,
                        deployment_versions.c.status == VersionStatus.LIVE.value,
                    )
                    .values(status=VersionStatus.RETIRED.value)
                )
                replicas = conn.execute(
                    sa.select(deployment_versions.c.replicas).where(
                        deployment_versions.c.service == service,
                        deployment_versions.c.version == version,
                    )
                ).scalar_one()
                self._upsert(conn, service, current_version=version, replicas=replicas, active=True)

    def set_replicas(self, service: str, replicas: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                deployments.update()
                .where(deployments.c.service == service)
                .values(replicas=replicas, updated_at=_now())
            )

    def set_ray(self, service: str, version: int, ray: dict[str, Any]) -> None:
        """A version on Ray was scaled: its bounds, for the next host start."""
        with self.engine.begin() as conn:
            conn.execute(
                deployment_versions.update()
                .where(
                    deployment_versions.c.service == service,
                    deployment_versions.c.version == version,
                )
                .values(ray=ray)
            )

    def deactivate(self, service: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                deployments.update()
                .where(deployments.c.service == service)
                .values(active=False, updated_at=_now())
            )

    def set_aside_dev(self) -> list[str]:
        """Deactivate every active deployment whose current version the development loop
        deployed, and return their names: a host starting restores the others only. Each is
        deactivated only if its current version is still that one (a deploy meanwhile wins).
        """
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(deployments.c.service, deployments.c.current_version)
                .select_from(
                    deployments.join(
                        deployment_versions,
                        sa.and_(
                            deployment_versions.c.service == deployments.c.service,
                            deployment_versions.c.version == deployments.c.current_version,
                        ),
                    )
                )
                .where(deployments.c.active.is_(True), deployment_versions.c.dev.is_(True))
            ).all()
            for service, current in rows:
                conn.execute(
                    deployments.update()
                    .where(
                        deployments.c.service == service,
                        deployments.c.current_version == current,
                    )
                    .values(active=False, updated_at=_now())
                )
        return sorted(service for service, _ in rows)

    def _upsert(self, conn: sa.Connection, service: str, **values: Any) -> None:
        values["updated_at"] = _now()
        updated = conn.execute(
            deployments.update().where(deployments.c.service == service).values(**values)
        )
        if updated.rowcount == 0:
            conn.execute(deployments.insert().values(service=service, **values))

    def active(self) -> list[Deployment]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deployments)
                .where(deployments.c.active.is_(True))
                .order_by(deployments.c.service)
            ).all()
        return [
            Deployment(r.service, r.current_version, r.replicas, r.active, r.updated_at)
            for r in rows
        ]

    def get(self, service: str) -> Deployment | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(deployments).where(deployments.c.service == service)).first()
        return (
            Deployment(r.service, r.current_version, r.replicas, r.active, r.updated_at)
            if r
            else None
        )

    def versions(self, service: str) -> list[DeploymentVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deployment_versions)
                .where(deployment_versions.c.service == service)
                .order_by(deployment_versions.c.version)
            ).all()
        return [_version(r) for r in rows]

    def version(self, service: str, version: int) -> DeploymentVersion | None:
        for v in self.versions(service):
            if v.version == version:
                return v
        return None

    def desired(self, service: str | None = None) -> list[tuple[Deployment, DeploymentVersion]]:
        """Each active deployment with its current version, in one query (of ``service``
        only, if given): what every host converges on (:mod:`shipyard.serve.reconcile`)."""
        query = (
            sa.select(
                deployments.c.replicas.label("wanted_replicas"),
                deployments.c.active,
                deployments.c.updated_at.label("deployment_updated_at"),
                deployment_versions,
            )
            .select_from(
                deployments.join(
                    deployment_versions,
                    sa.and_(
                        deployment_versions.c.service == deployments.c.service,
                        deployment_versions.c.version == deployments.c.current_version,
                    ),
                )
            )
            .where(deployments.c.active.is_(True))
            .order_by(deployments.c.service)
        )
        if service is not None:
            query = query.where(deployments.c.service == service)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            (
                Deployment(
                    r.service, r.version, r.wanted_replicas, r.active, r.deployment_updated_at
                ),
                _version(r),
            )
            for r in rows
        ]

    def pinned_through(self, name: str, alias: str) -> list[tuple[str, int, str]]:
        """``(service, deployment version, "name:version" it serves)`` for each active
        deployment whose current version pinned ``name@alias``: a deployment resolves an
        alias once, when it is deployed, and serves that version until deployed again."""
        spec = f"{name}@{alias}"
        current = sa.select(deployment_versions).join(
            deployments,
            sa.and_(
                deployments.c.service == deployment_versions.c.service,
                deployments.c.current_version == deployment_versions.c.version,
            ),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                current.where(deployments.c.active.is_(True)).order_by(deployments.c.service)
            ).all()
        found = []
        for row in rows:
            pinned = (row.pins or {}).get(spec)
            if pinned is not None:
                found.append((str(row.service), int(row.version), str(pinned)))
        return found
