"""Deployments that follow a model alias: continuous delivery without a person.

``shipyard deploy service.py:Ranker --name ranker --follow ranker@prod`` pins ``ranker@prod``
as any ``--model`` does, and records that the deployment *follows* it. The host looks at the
aliases its deployments follow every :func:`follow_interval` seconds (one indexed query for
the follows, one for the aliases; at once when the alias moves through this host's admin
API); when ``ranker@prod`` points at another version than the deployment serves, it records a
new deployment version — the current one's code snapshot, entry, environment, secrets and
memory limit, the deployment's replica count, the pin moved to the alias's version — and
rolls to it as any deploy does: the new replicas start, traffic switches when all are ready,
the old ones drain, so no request fails. The audit log says why (``follow``: "followed
ranker@prod → 4"), and so do ``shipyard deployments ranker`` and the UI's deployment page.

- A new version that does not start (its ``load()`` fails on the new model) leaves the old
  one serving; the failure is recorded (the version ``failed`` with its reason, the follow's
  note, a ``follow_failed`` event, a ``follow.failed`` audit entry) and not retried: the
  follow waits for the alias's next move.
- ``shipyard rollback`` pauses following (who, when, why: recorded and shown) until the
  deployment is deployed again with ``--follow``. A deploy states its follows: one without
  ``--follow`` follows nothing.
- Several hosts on one database: a move is *claimed* with a compare-and-set on the follow's
  row, so one host records the new version; the host renews its claim while it rolls, and a
  claim whose host died is taken over :data:`FOLLOW_LEASE` seconds after its last renewal.

Only deployments live on this host are rolled (not one a restart is still bringing back).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shipyard.serve.deployments import VersionStatus
from shipyard.serve.errors import ServeError
from shipyard.store.schema import deployment_follows, deployment_versions, deployments

if TYPE_CHECKING:
    from shipyard.serve.admin import AdminAPI
    from shipyard.store.meta import MetaStore

log = logging.getLogger("shipyard.serve")

#: seconds between two looks at the followed aliases (``SHIPYARD_FOLLOW_INTERVAL``, or
#: ``follow_interval`` in config.yaml)
FOLLOW_INTERVAL = 1.0
#: seconds after which a move claimed by a host that stopped renewing its claim (it renews it
#: every third of this while it rolls) is taken over: its host died
FOLLOW_LEASE = 60.0


class FollowError(ServeError):
    """A ``--follow`` that is not ``name@alias``."""


class Outcome(enum.StrEnum):
    """How the follow's last roll (to ``target``) ended."""

    LIVE = "live"
    FAILED = "failed"


@dataclass(frozen=True)
class Follow:
    """One alias one deployment follows, and what became of its last move."""

    service: str
    spec: str  # "ranker@prod"
    model: str
    alias: str
    created_at: datetime
    created_by: str
    paused_at: datetime | None
    paused_by: str | None
    paused_note: str | None
    #: the model version last acted on (None: none yet)
    target: int | None
    #: how rolling to ``target`` ended (None: under way since ``claimed_at``)
    outcome: Outcome | None
    claimed_at: datetime | None
    #: the last thing that happened, in words ("followed ranker@prod → 4 (v5)")
    note: str | None
    updated_at: datetime

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def describe(self) -> str:
        """One line: ``following ranker@prod`` and, if so, why it is paused."""
        if self.paused_at is None:
            return f"following {self.spec}"
        return (
            f"following {self.spec}: paused {self.paused_at:%Y-%m-%d %H:%M:%S} UTC by "
            f"{self.paused_by} ({self.paused_note}); deploy again with --follow {self.spec} "
            "to resume"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "model": self.model,
            "alias": self.alias,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "paused": self.paused,
            "paused_at": self.paused_at.isoformat() if self.paused_at else None,
            "paused_by": self.paused_by,
            "paused_note": self.paused_note,
            "target": self.target,
            "outcome": self.outcome.value if self.outcome else None,
            "note": self.note,
            "describe": self.describe(),
        }


def parse_follow(spec: object) -> tuple[str, str]:
    """``(name, alias)`` of ``name@alias``; raises :class:`FollowError` naming the fix."""
    from shipyard.registry import ModelSpecError, parse_spec

    try:
        parsed = parse_spec(spec)
    except ModelSpecError as exc:
        raise FollowError(f"--follow {spec!r}: {exc}") from None
    if parsed.alias is None:
        raise FollowError(
            f"--follow {spec!r}: follow an alias, name@alias (e.g. ranker@prod); a version "
            "or the latest is pinned with --model"
        )
    return parsed.name, parsed.alias


def follow_interval() -> float:
    """``SHIPYARD_FOLLOW_INTERVAL`` > ``follow_interval`` in config.yaml > 1 s."""
    from shipyard.config import ConfigError, settings

    value: Any = os.environ.get("SHIPYARD_FOLLOW_INTERVAL") or settings().extra.get(
        "follow_interval", FOLLOW_INTERVAL
    )
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0.05 <= seconds <= 3600:
        raise ConfigError(f"follow_interval must be seconds from 0.05 to 3600, got {value!r}")
    return seconds


def _now() -> datetime:
    return datetime.now(UTC)


def _follow(row: Any) -> Follow:
    return Follow(
        service=row.service,
        spec=row.spec,
        model=row.model,
        alias=row.alias,
        created_at=row.created_at,
        created_by=row.created_by,
        paused_at=row.paused_at,
        paused_by=row.paused_by,
        paused_note=row.paused_note,
        target=row.target,
        outcome=Outcome(row.outcome) if row.outcome else None,
        claimed_at=row.claimed_at,
        note=row.note,
        updated_at=row.updated_at,
    )


class FollowStore:
    """The follows in the metadata database."""

    def __init__(self, meta: MetaStore) -> None:
        self.engine = meta.engine

    def of(self, service: str) -> list[Follow]:
        """The follows of ``service``, by spec."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deployment_follows)
                .where(deployment_follows.c.service == service)
                .order_by(deployment_follows.c.spec)
            ).all()
        return [_follow(r) for r in rows]

    def get(self, service: str, spec: str) -> Follow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(deployment_follows).where(
                    deployment_follows.c.service == service, deployment_follows.c.spec == spec
                )
            ).first()
        return _follow(row) if row is not None else None

    def replace(self, service: str, pins: dict[str, str], user: str) -> list[str]:
        """A deploy of ``service`` went live following ``pins`` (``spec -> "name:version"``
        it pinned): these are its follows now, unpaused. Returns the specs it no longer
        follows."""
        now = _now()
        with self.engine.begin() as conn:
            before = set(
                conn.execute(
                    sa.select(deployment_follows.c.spec).where(
                        deployment_follows.c.service == service
                    )
                ).scalars()
            )
            conn.execute(deployment_follows.delete().where(deployment_follows.c.service == service))
            for spec, pinned in sorted(pins.items()):
                model, alias = parse_follow(spec)
                version = pinned.rpartition(":")[2]
                conn.execute(
                    deployment_follows.insert().values(
                        service=service,
                        spec=spec,
                        model=model,
                        alias=alias,
                        created_at=now,
                        created_by=user,
                        target=int(version) if version.isdigit() else None,
                        outcome=Outcome.LIVE.value,
                        note=f"deployed following {spec} (serving {pinned})",
                        updated_at=now,
                    )
                )
        return sorted(before - set(pins))

    def pause(self, service: str, note: str, user: str) -> list[Follow]:
        """Pause every unpaused follow of ``service``; returns those paused now."""
        now = _now()
        with self.engine.begin() as conn:
            where = (
                deployment_follows.c.service == service,
                deployment_follows.c.paused_at.is_(None),
            )
            rows = conn.execute(sa.select(deployment_follows).where(*where)).all()
            conn.execute(
                deployment_follows.update()
                .where(*where)
                .values(paused_at=now, paused_by=user, paused_note=note, updated_at=now)
            )
        return [_follow(r) for r in rows]

    def watched(self) -> list[tuple[Follow, dict[str, str]]]:
        """Each unpaused follow of an active deployment, with its current version's pins."""
        query = (
            sa.select(deployment_follows, deployment_versions.c.pins)
            .select_from(
                deployment_follows.join(
                    deployments, deployments.c.service == deployment_follows.c.service
                ).join(
                    deployment_versions,
                    sa.and_(
                        deployment_versions.c.service == deployments.c.service,
                        deployment_versions.c.version == deployments.c.current_version,
                    ),
                )
            )
            .where(deployments.c.active.is_(True), deployment_follows.c.paused_at.is_(None))
            .order_by(deployment_follows.c.service, deployment_follows.c.spec)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(_follow(r), dict(r.pins or {})) for r in rows]

    def claim(self, follow: Follow, target: int) -> bool:
        """Claim rolling ``follow`` to model version ``target``: a compare-and-set on the row
        as ``follow`` read it, so of several hosts one wins. True: this caller won."""
        now = _now()
        c = deployment_follows.c
        with self.engine.begin() as conn:
            done = conn.execute(
                deployment_follows.update()
                .where(
                    c.service == follow.service,
                    c.spec == follow.spec,
                    c.paused_at.is_(None),
                    c.updated_at == follow.updated_at,
                    c.target.is_not_distinct_from(follow.target),
                    c.claimed_at.is_not_distinct_from(follow.claimed_at),
                )
                .values(target=target, outcome=None, claimed_at=now, updated_at=now)
            )
        return bool(done.rowcount == 1)

    def renew(self, service: str, spec: str, target: int) -> None:
        """Keep the claim on rolling to ``target`` (it is under way)."""
        c = deployment_follows.c
        with self.engine.begin() as conn:
            conn.execute(
                deployment_follows.update()
                .where(
                    c.service == service,
                    c.spec == spec,
                    c.target == target,
                    c.outcome.is_(None),
                )
                .values(claimed_at=_now())
            )

    def settle(
        self,
        service: str,
        spec: str,
        *,
        target: int | None,
        outcome: Outcome,
        note: str | None,
    ) -> None:
        """Record how rolling to ``target`` ended."""
        with self.engine.begin() as conn:
            conn.execute(
                deployment_follows.update()
                .where(deployment_follows.c.service == service, deployment_follows.c.spec == spec)
                .values(target=target, outcome=outcome.value, note=note, updated_at=_now())
            )

    def following(self, spec: str) -> list[Follow]:
        """The follows of ``spec`` (``name@alias``) by active deployments."""
        query = (
            sa.select(deployment_follows)
            .join(deployments, deployments.c.service == deployment_follows.c.service)
            .where(deployments.c.active.is_(True), deployment_follows.c.spec == spec)
            .order_by(deployment_follows.c.service)
        )
        with self.engine.connect() as conn:
            return [_follow(r) for r in conn.execute(query).all()]

    def set_note(self, service: str, spec: str, note: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                deployment_follows.update()
                .where(deployment_follows.c.service == service, deployment_follows.c.spec == spec)
                .values(note=note, updated_at=_now())
            )


def claim_expired(follow: Follow, lease: float, now: datetime | None = None) -> bool:
    """True if ``follow``'s roll is claimed, unsettled, and its claim was last renewed more
    than ``lease`` seconds before ``now``: its host died, another may take it over."""
    if follow.outcome is not None or follow.claimed_at is None:
        return False
    return (now or _now()) - follow.claimed_at > timedelta(seconds=lease)


class Follower:
    """The host's loop: roll each following deployment to where its alias points (see the
    module docstring). ``interval``: seconds between looks (default :func:`follow_interval`);
    :meth:`wake` looks now."""

    def __init__(
        self, admin: AdminAPI, *, interval: float | None = None, lease: float = FOLLOW_LEASE
    ) -> None:
        self.admin = admin
        self.store = FollowStore(admin.meta)
        self.interval = interval
        self.lease = lease
        self._woken: asyncio.Event | None = None
        self._rolls: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look now (an alias moved through this host)."""
        if self._woken is not None:
            self._woken.set()

    async def run(self) -> None:
        """Look every :attr:`interval` seconds until cancelled."""
        from shipyard.config import ConfigError

        try:
            interval = self.interval if self.interval is not None else follow_interval()
        except ConfigError as exc:
            log.error("deployments do not follow their aliases on this host: %s", exc)
            return
        self._woken = asyncio.Event()
        failing = False
        try:
            while True:
                try:
                    await self.tick()
                except Exception:  # the database is away: said once, tried at each look
                    if not failing:
                        log.warning("could not look at the followed aliases", exc_info=True)
                    failing = True
                else:
                    if failing:
                        log.info("looking at the followed aliases again")
                    failing = False
                try:
                    await asyncio.wait_for(self._woken.wait(), interval)
                except TimeoutError:
                    pass
                self._woken.clear()
        finally:
            for task in list(self._rolls):
                task.cancel()

    async def tick(self) -> None:
        """One look: claim and start the rolls that are due (each in the background: a slow
        ``load()`` of one service does not hold back the others)."""
        live = set(self.admin.supervisor.services)
        for follow, version in await asyncio.to_thread(self._due, live):
            task = asyncio.create_task(self._roll(follow, version))
            self._rolls.add(task)
            task.add_done_callback(self._rolls.discard)

    def _due(self, live: set[str]) -> list[tuple[Follow, int]]:
        """The follows of the ``live`` services whose alias points elsewhere than their
        deployment serves, claimed."""
        from shipyard.registry import Registry

        watched = [(f, pins) for f, pins in self.store.watched() if f.service in live]
        if not watched:
            return []
        aliases = Registry(self.admin.meta).aliases({f.model for f, _ in watched})
        due = []
        for follow, pins in watched:
            version = aliases.get(follow.model, {}).get(follow.alias)
            if version is None:
                gone = f"{follow.spec} does not exist; still serving {pins.get(follow.spec)}"
                if follow.note != gone:
                    self.store.set_note(follow.service, follow.spec, gone)
                continue
            if pins.get(follow.spec) == f"{follow.model}:{version}":
                if follow.target != version or follow.outcome is not Outcome.LIVE:
                    # the alias came back to what is served (or a deploy pinned it)
                    self.store.settle(
                        follow.service,
                        follow.spec,
                        target=version,
                        outcome=Outcome.LIVE,
                        note=f"{follow.spec} → {version}: serving {follow.model}:{version}",
                    )
                continue
            if follow.target == version and not claim_expired(follow, self.lease):
                continue  # rolled (or failed: wait for the next move), or rolling now
            if self.store.claim(follow, version):
                due.append((follow, version))
        return due

    async def _roll(self, follow: Follow, version: int) -> None:
        """:meth:`_roll_claimed`, renewing the claim until it is done."""
        renewing = asyncio.create_task(self._renew(follow, version))
        try:
            await self._roll_claimed(follow, version)
        except Exception:  # the database went away mid-roll: the lease lets a look retry
            log.exception("%s: following %s failed", follow.service, follow.spec)
        finally:
            renewing.cancel()

    async def _renew(self, follow: Follow, version: int) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await asyncio.to_thread(self.store.renew, follow.service, follow.spec, version)
            except Exception:  # the database is away: the roll itself will say more
                log.debug("could not renew the claim on %s", follow.spec, exc_info=True)

    async def _roll_claimed(self, follow: Follow, version: int) -> None:
        """Record the new deployment version and roll to it, under the service's lock (a
        deploy or rollback meanwhile wins: the follow is looked at again first)."""
        admin = self.admin
        service, spec = follow.service, follow.spec
        pinned = f"{follow.model}:{version}"
        async with admin.lock(service):
            fresh = self.store.get(service, spec)
            deployment = admin.store.get(service)
            if (
                fresh is None
                or fresh.paused
                or fresh.target != version
                or fresh.outcome is not None
                or deployment is None
                or not deployment.active
                or deployment.current_version is None
            ):
                return  # redeployed, rolled back or undeployed since the claim
            current = admin.store.version(service, deployment.current_version)
            if current is None:
                return
            before = current.pins.get(spec)
            reason = f"followed {spec} → {version}"
            new = admin.store.add_version(
                service,
                entry=current.entry,
                code_key=current.code_key,
                replicas=deployment.replicas,
                env=current.env,
                pins={**current.pins, spec: pinned},
                created_by=f"follow:{spec}",
                secrets=current.secrets,
                memory=current.memory,
                ray=current.ray,
            )
            log.info("%s: %s (was %s): rolling to v%s", service, reason, before, new.version)
            try:
                await admin.roll_out_locked(new, action="follow", detail={"reason": reason})
            except Exception as exc:
                if isinstance(exc, ServeError):  # "ranker v5 did not start: ...": said
                    log.error("%s: %s → %s: %s", service, spec, version, exc)
                else:  # its code snapshot unreadable, ...: ours, with the traceback
                    log.exception("%s: rolling to %s failed", service, pinned)
                    exc = ServeError(f"{service} v{new.version}: {type(exc).__name__}: {exc}")
                    admin.store.mark(service, new.version, VersionStatus.FAILED, str(exc))
                note = f"{spec} → {version}: {exc}"
                self.store.settle(service, spec, target=version, outcome=Outcome.FAILED, note=note)
                admin.record_event(service, "follow_failed", note)
                self._audit_failure(follow, version, new.version, str(exc))
                return
            self.store.settle(
                service,
                spec,
                target=version,
                outcome=Outcome.LIVE,
                note=f"{reason} (v{new.version})",
            )

    def _audit_failure(self, follow: Follow, version: int, deployed: int, reason: str) -> None:
        from shipyard.registry import Registry

        Registry(self.admin.meta).log_event(
            "follow.failed",
            model=follow.model,
            alias=follow.alias,
            to_version=version,
            detail={"service": follow.service, "version": deployed, "reason": reason},
            user=f"follow:{follow.spec}",
        )


__all__ = [
    "FOLLOW_INTERVAL",
    "FOLLOW_LEASE",
    "Follow",
    "FollowError",
    "FollowStore",
    "Follower",
    "Outcome",
    "claim_expired",
    "follow_interval",
    "parse_follow",
]
