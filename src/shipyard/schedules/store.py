"""Schedules, their fire records and the scheduler's lease in the metadata database.

Exactly once is the database's job, not a hope:

- each fire time and each event id of a schedule has at most one ``schedule_fires`` row
  (unique indexes on ``(schedule, scheduled_for)`` and ``(schedule, event_id)``; inserts that
  lose the race do nothing);
- a row is claimed by compare-and-set on its status and claim token (PostgreSQL also locks
  the candidates ``FOR UPDATE SKIP LOCKED``, so two schedulers never wait on each other);
- the run's own process turns ``claimed`` into ``started`` with the claim token it was given
  (:meth:`ScheduleStore.start`): if its scheduler died and another one took the expired
  claim over, the late process finds a different token and exits without running.
"""

from __future__ import annotations

import builtins
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from shipyard.schedules.errors import ScheduleNotFound
from shipyard.schedules.policies import Policies
from shipyard.schedules.records import (
    FireKind,
    FireRecord,
    FireStatus,
    ScheduleRecord,
    VersionRecord,
)
from shipyard.store.meta import MetaStore
from shipyard.store.records import RunStatus
from shipyard.store.schema import (
    schedule_fires,
    schedule_versions,
    scheduler_lease,
    schedules,
)

LEASE = "scheduler"
#: statuses of a record whose run may still be going
LIVE = (FireStatus.CLAIMED.value, FireStatus.STARTED.value)


@dataclass(frozen=True)
class NewVersion:
    """What ``schedule create`` registers."""

    flow_name: str
    code_key: str
    module: str
    flow_file: str
    parameters: dict[str, Any]
    cron: str | None
    timezone: str
    triggers: list[dict[str, Any]]
    policies: Policies


def _version(row: Row[Any]) -> VersionRecord:
    return VersionRecord(
        name=row.name,
        version=row.version,
        flow_name=row.flow_name,
        code_key=row.code_key,
        module=row.module,
        flow_file=row.flow_file,
        parameters=dict(row.parameters or {}),
        cron=row.cron,
        timezone=row.timezone,
        triggers=list(row.triggers or []),
        policies=Policies.from_json(row.policies or {}),
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _fire(row: Row[Any]) -> FireRecord:
    return FireRecord(
        id=row.id,
        schedule=row.schedule,
        version=row.version,
        kind=FireKind(row.kind),
        scheduled_for=row.scheduled_for,
        event_id=row.event_id,
        due_at=row.due_at,
        status=FireStatus(row.status),
        reason=row.reason,
        params=dict(row.params or {}),
        trigger=dict(row.trigger or {}),
        claim_token=row.claim_token,
        claimed_by=row.claimed_by,
        claim_expires=row.claim_expires,
        run_id=row.run_id,
        pid=row.pid,
        host=row.host,
        exit_code=row.exit_code,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        cancel_requested_at=row.cancel_requested_at,
    )


def _insert_ignore(conn: Connection, table: sa.Table, values: Sequence[dict[str, Any]]) -> int:
    if not values:
        return 0
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt: Any = sqlite_insert(table).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).on_conflict_do_nothing()
    return int(conn.execute(stmt, list(values)).rowcount or 0)


def insert_ignore_unique(conn: Connection, values: Sequence[dict[str, Any]]) -> int:
    """Insert fire rows; a row whose (schedule, fire time) or (schedule, event id) exists
    already is not inserted. Returns how many were."""
    return _insert_ignore(conn, schedule_fires, values)


@dataclass
class ScheduleCache:
    """What :meth:`ScheduleStore.live` read last: each schedule's row as stored (its
    stamp) and its full record."""

    stamps: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    records: dict[str, ScheduleRecord] = field(default_factory=dict)

    def clear(self) -> None:
        self.stamps.clear()
        self.records.clear()


class ScheduleStore:
    """The schedule tables, over a :class:`MetaStore`'s engines.

    >>> store = ScheduleStore(MetaStore.open())               # doctest: +SKIP
    >>> store.get("RankerFlow").current.cron
    '0 */4 * * *'
    """

    def __init__(self, meta: MetaStore, *, db_clock: bool | None = None) -> None:
        self.meta = meta
        self.writer = meta.writer
        self.reader = meta.reader
        self.postgres = meta.writer.dialect.name == "postgresql"
        #: time the lease by the database's clock (default: on PostgreSQL, where schedulers
        #: on several hosts share it); False times it by the scheduler's clock, as tests
        #: that drive a lease's expiry with an injected clock need
        self.db_clock = self.postgres if db_clock is None else db_clock and self.postgres

    # --- schedules ------------------------------------------------------------------------
    def save(self, name: str, new: NewVersion, *, user: str, now: datetime) -> int:
        """Register ``new`` as the next version of ``name`` (creating or reviving it);
        returns the version number. Fire times before ``now`` are not due for a new or
        revived schedule."""
        with self.writer.begin() as conn:
            row = conn.execute(
                sa.select(schedules).where(schedules.c.name == name).with_for_update()
            ).first()
            version = 1
            if row is not None:
                last = conn.execute(
                    sa.select(sa.func.max(schedule_versions.c.version)).where(
                        schedule_versions.c.name == name
                    )
                ).scalar_one()
                version = int(last or 0) + 1
            conn.execute(
                schedule_versions.insert().values(
                    name=name,
                    version=version,
                    flow_name=new.flow_name,
                    code_key=new.code_key,
                    module=new.module,
                    flow_file=new.flow_file,
                    parameters=new.parameters,
                    cron=new.cron,
                    timezone=new.timezone,
                    triggers=new.triggers,
                    policies=new.policies.to_json(),
                    created_at=now,
                    created_by=user,
                )
            )
            if row is None:
                conn.execute(
                    schedules.insert().values(
                        name=name,
                        flow_name=new.flow_name,
                        version=version,
                        paused=False,
                        cursor=now,
                        created_at=now,
                        created_by=user,
                        updated_at=now,
                    )
                )
            else:
                values: dict[str, Any] = {
                    "version": version,
                    "flow_name": new.flow_name,
                    "updated_at": now,
                }
                if row.deleted_at is not None:  # revived: starts afresh
                    values.update(deleted_at=None, paused=False, note=None, cursor=now)
                conn.execute(schedules.update().where(schedules.c.name == name).values(**values))
        return version

    def _select(self, conn: Connection, names: Iterable[str] | None) -> list[ScheduleRecord]:
        query = sa.select(schedules, schedule_versions).join(
            schedule_versions,
            sa.and_(
                schedule_versions.c.name == schedules.c.name,
                schedule_versions.c.version == schedules.c.version,
            ),
        )
        if names is not None:
            query = query.where(schedules.c.name.in_(list(names)))
        out = []
        for row in conn.execute(query.order_by(schedules.c.name)):
            m = row._mapping
            version = _version(row)
            out.append(
                ScheduleRecord(
                    name=m[schedules.c.name],
                    flow_name=m[schedules.c.flow_name],
                    version=m[schedules.c.version],
                    paused=bool(m[schedules.c.paused]),
                    note=m[schedules.c.note],
                    paused_at=m[schedules.c.paused_at],
                    paused_by=m[schedules.c.paused_by],
                    cursor=m[schedules.c.cursor],
                    deleted_at=m[schedules.c.deleted_at],
                    created_at=m[schedules.c.created_at],
                    created_by=m[schedules.c.created_by],
                    updated_at=m[schedules.c.updated_at],
                    current=version,
                )
            )
        return out

    def list(self, *, include_deleted: bool = False) -> list[ScheduleRecord]:
        """Every schedule (deleted ones only with ``include_deleted``), by name."""
        with self.reader.connect() as conn:
            found = self._select(conn, None)
        return [s for s in found if include_deleted or s.deleted_at is None]

    def live(self, cache: ScheduleCache) -> builtins.list[ScheduleRecord]:
        """Every live schedule, by name, as :meth:`list` but for the scheduler's every tick:
        one light query of the ``schedules`` table (no join, no JSON, dates not parsed),
        and the full records (the version's JSON) read again only for the rows that
        changed since ``cache`` saw them (a moved cursor, a pause, a new version)."""
        light = [
            sa.type_coerce(c, sa.String).label(c.name) if isinstance(c.type, sa.DateTime) else c
            for c in schedules.c
        ]
        with self.reader.connect() as conn:
            rows = conn.execute(sa.select(*light).order_by(schedules.c.name)).all()
            stamps = {row.name: tuple(row) for row in rows}
            stale = [n for n, stamp in stamps.items() if cache.stamps.get(n) != stamp]
            for start in range(0, len(stale), 500):
                for record in self._select(conn, stale[start : start + 500]):
                    cache.records[record.name] = record
        for name in set(cache.records) - set(stamps):
            del cache.records[name]
        cache.stamps = {n: s for n, s in stamps.items() if n in cache.records}
        return [
            cache.records[n]
            for n in stamps
            if n in cache.records and cache.records[n].deleted_at is None
        ]

    def get(self, name: str, *, include_deleted: bool = False) -> ScheduleRecord:
        """The schedule ``name``; raises :class:`ScheduleNotFound`."""
        with self.reader.connect() as conn:
            found = self._select(conn, [name])
        if not found or (found[0].deleted_at is not None and not include_deleted):
            names = [s.name for s in self.list()]
            hint = f" (there are: {', '.join(names)})" if names else ""
            raise ScheduleNotFound(
                f"no schedule named {name!r}{hint}; `shipyard schedule create flow.py` makes one"
            )
        return found[0]

    def version(self, name: str, version: int) -> VersionRecord:
        with self.reader.connect() as conn:
            row = conn.execute(
                sa.select(schedule_versions).where(
                    schedule_versions.c.name == name, schedule_versions.c.version == version
                )
            ).first()
        if row is None:
            raise ScheduleNotFound(f"schedule {name!r} has no version {version}")
        return _version(row)

    def versions(self, name: str) -> builtins.list[VersionRecord]:
        with self.reader.connect() as conn:
            rows = conn.execute(
                sa.select(schedule_versions)
                .where(schedule_versions.c.name == name)
                .order_by(schedule_versions.c.version)
            ).all()
        return [_version(r) for r in rows]

    def _update(self, name: str, **values: Any) -> None:
        with self.writer.begin() as conn:
            done = conn.execute(
                schedules.update()
                .where(schedules.c.name == name, schedules.c.deleted_at.is_(None))
                .values(**values)
            )
        if not done.rowcount:
            self.get(name)  # raises ScheduleNotFound
            raise AssertionError("unreachable")  # pragma: no cover

    def pause(self, name: str, note: str, *, user: str, now: datetime) -> None:
        """Pause ``name``: nothing runs while it is paused, and each fire time is recorded
        as skipped, ``paused: <note>``; ``note`` says why."""
        self._update(name, paused=True, note=note, paused_at=now, paused_by=user, updated_at=now)

    def resume(self, name: str, *, now: datetime) -> None:
        """Resume ``name``: fire times from now on are due. Those while it was paused that no
        scheduler recorded yet are recorded now, skipped with ``paused: <note>`` (a pause
        hides no fire time), and the cursor moves to ``now``."""
        from shipyard.schedules.cron import Cron
        from shipyard.schedules.plan import paused_fires

        with self.writer.begin() as conn:
            row = conn.execute(
                sa.select(
                    schedules.c.paused,
                    schedules.c.note,
                    schedules.c.cursor,
                    schedules.c.version,
                    schedule_versions.c.cron,
                    schedule_versions.c.timezone,
                )
                .join(
                    schedule_versions,
                    sa.and_(
                        schedule_versions.c.name == schedules.c.name,
                        schedule_versions.c.version == schedules.c.version,
                    ),
                )
                .where(schedules.c.name == name, schedules.c.deleted_at.is_(None))
                .with_for_update(of=schedules)
            ).first()
            if row is None:
                self.get(name)  # raises ScheduleNotFound
                return
            cursor = row.cursor
            if row.paused and row.cron is not None:
                cron = Cron.parse(row.cron)
                while cursor < now:
                    planned, moved = paused_fires(cron, row.timezone, cursor, now, row.note)
                    insert_ignore_unique(
                        conn,
                        [
                            fire_row(
                                schedule=name,
                                version=row.version,
                                kind=FireKind.SCHEDULE,
                                scheduled_for=p.scheduled_for,
                                due_at=p.due_at,
                                status=p.status,
                                reason=p.reason,
                                now=now,
                            )
                            for p in planned
                        ],
                    )
                    if moved == cursor:
                        break
                    cursor = moved
            if row.paused:
                cursor = max(cursor, now)
            conn.execute(
                schedules.update()
                .where(schedules.c.name == name)
                .values(paused=False, note=None, cursor=cursor, updated_at=now)
            )

    def delete(self, name: str, *, now: datetime) -> None:
        """Delete ``name`` (its versions and history stay; ``create`` revives it)."""
        self._update(name, deleted_at=now, updated_at=now)

    def advance(
        self, moves: Sequence[tuple[str, datetime, datetime, Sequence[dict[str, Any]]]]
    ) -> int:
        """For each (name, old cursor, new cursor, rows): record the fire rows of the fire
        times in (old, new] and move the cursor, only if it is still ``old`` (else another
        scheduler did it). One transaction for all; returns how many rows were recorded."""
        recorded = 0
        with self.writer.begin() as conn:
            for name, old_cursor, new_cursor, rows in sorted(moves, key=lambda m: m[0]):
                moved = conn.execute(
                    schedules.update()
                    .where(schedules.c.name == name, schedules.c.cursor == old_cursor)
                    .values(cursor=new_cursor)
                )
                if moved.rowcount:
                    insert_ignore_unique(conn, rows)
                    recorded += len(rows)
        return recorded

    # --- fire records ---------------------------------------------------------------------
    def add_fires(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert fire rows (manual, backfill, event); existing keys are left alone."""
        with self.writer.begin() as conn:
            return insert_ignore_unique(conn, rows)

    def fires(
        self,
        name: str | None = None,
        *,
        limit: int = 50,
        kind: FireKind | None = None,
        status: Sequence[FireStatus] = (),
    ) -> builtins.list[FireRecord]:
        """Fire records, newest first."""
        query = sa.select(schedule_fires)
        if name is not None:
            query = query.where(schedule_fires.c.schedule == name)
        if kind is not None:
            query = query.where(schedule_fires.c.kind == kind.value)
        if status:
            query = query.where(schedule_fires.c.status.in_([s.value for s in status]))
        query = query.order_by(schedule_fires.c.id.desc()).limit(limit)
        with self.reader.connect() as conn:
            return [_fire(r) for r in conn.execute(query)]

    def fire(self, fire_id: int) -> FireRecord:
        with self.reader.connect() as conn:
            row = conn.execute(
                sa.select(schedule_fires).where(schedule_fires.c.id == fire_id)
            ).first()
        if row is None:
            raise ScheduleNotFound(f"no fire record {fire_id}")
        return _fire(row)

    def fire_for_event(self, name: str, event_id: str) -> FireRecord | None:
        """The fire record of ``name`` for ``event_id`` (unique), or None."""
        with self.reader.connect() as conn:
            row = conn.execute(
                sa.select(schedule_fires).where(
                    schedule_fires.c.schedule == name, schedule_fires.c.event_id == event_id
                )
            ).first()
        return None if row is None else _fire(row)

    def fires_for_events(self, event_ids: Sequence[str]) -> dict[str, builtins.list[FireRecord]]:
        """The fire records of each event id (``event:<id>``, ``run:<id>``), any schedule."""
        out: dict[str, builtins.list[FireRecord]] = {}
        if not event_ids:
            return out
        with self.reader.connect() as conn:
            rows = conn.execute(
                sa.select(schedule_fires)
                .where(schedule_fires.c.event_id.in_(list(event_ids)))
                .order_by(schedule_fires.c.schedule)
            )
            for row in rows:
                out.setdefault(row.event_id, []).append(_fire(row))
        return out

    def existing_times(self, name: str, times: Sequence[datetime]) -> set[datetime]:
        """Which of ``times`` have a record of ``name`` already."""
        found: set[datetime] = set()
        with self.reader.connect() as conn:
            for start in range(0, len(times), 500):
                chunk = list(times[start : start + 500])
                found.update(
                    conn.execute(
                        sa.select(schedule_fires.c.scheduled_for).where(
                            schedule_fires.c.schedule == name,
                            schedule_fires.c.scheduled_for.in_(chunk),
                        )
                    ).scalars()
                )
        return found

    def start(self, fire_id: int, token: str, *, pid: int, now: datetime) -> bool:
        """The run's process takes its claim: True if the claim is still ``token``'s (then
        the record is ``started``), False if another scheduler took it over."""
        with self.writer.begin() as conn:
            done = conn.execute(
                schedule_fires.update()
                .where(
                    schedule_fires.c.id == fire_id,
                    schedule_fires.c.status == FireStatus.CLAIMED.value,
                    schedule_fires.c.claim_token == token,
                )
                .values(
                    status=FireStatus.STARTED.value,
                    started_at=now,
                    pid=pid,
                    host=socket.gethostname(),
                )
            )
        return bool(done.rowcount)

    def link_run(self, fire_id: int, run_id: int) -> None:
        with self.writer.begin() as conn:
            conn.execute(
                schedule_fires.update().where(schedule_fires.c.id == fire_id).values(run_id=run_id)
            )

    def finish(self, fire_id: int, exit_code: int, *, now: datetime) -> None:
        with self.writer.begin() as conn:
            conn.execute(
                schedule_fires.update()
                .where(schedule_fires.c.id == fire_id)
                .values(exit_code=exit_code, finished_at=now)
            )

    def request_cancel(
        self, fire_ids: Sequence[int], *, now: datetime, conn: Connection | None = None
    ) -> int:
        """Ask the launchers of ``fire_ids`` to stop their runs (``overlap="cancel-previous"``):
        each launcher, on whichever host, polls its row and SIGTERMs its run. A request
        already made is kept (its time stays). Returns how many rows were newly asked."""
        if not fire_ids:
            return 0
        stmt = (
            schedule_fires.update()
            .where(
                schedule_fires.c.id.in_(list(fire_ids)),
                schedule_fires.c.cancel_requested_at.is_(None),
                schedule_fires.c.finished_at.is_(None),
            )
            .values(cancel_requested_at=now)
        )
        if conn is not None:
            return int(conn.execute(stmt).rowcount or 0)
        with self.writer.begin() as own:
            return int(own.execute(stmt).rowcount or 0)

    def cancel_requested(self, fire_id: int) -> bool:
        """Whether a scheduler asked for this fire's run to stop (the launcher polls this)."""
        with self.writer.connect() as conn:
            at = conn.execute(
                sa.select(schedule_fires.c.cancel_requested_at).where(
                    schedule_fires.c.id == fire_id
                )
            ).scalar()
        return at is not None

    def set_status(
        self, fire_id: int, status: FireStatus, reason: str | None, *, now: datetime
    ) -> None:
        values: dict[str, Any] = {"status": status.value, "reason": reason}
        if status in (FireStatus.SKIPPED, FireStatus.ERROR):
            values["finished_at"] = now
        with self.writer.begin() as conn:
            conn.execute(
                schedule_fires.update().where(schedule_fires.c.id == fire_id).values(**values)
            )

    def run_statuses(self, run_ids: Sequence[int]) -> dict[int, RunStatus]:
        """The status of each run (DEAD when its heartbeat stopped)."""
        out: dict[int, RunStatus] = {}
        for run_id in run_ids:
            record = self.meta.get_run_by_id(run_id)
            if record is not None:
                out[run_id] = record.status
        return out

    # --- the lease --------------------------------------------------------------------------
    def acquire_lease(self, holder: str, *, ttl: timedelta, now: datetime) -> bool:
        """Take or renew the scheduler lease; False while another holder's is unexpired.

        On PostgreSQL the lease is timed by the database's clock (``now()``), not ``now``
        (unless ``db_clock=False``): several hosts whose clocks disagree still see one
        expiry, so a skewed clock neither steals a live lease nor eats into its TTL. On
        SQLite (one scheduler per database, on its host) ``now`` is used."""
        if self.db_clock:
            return self._acquire_lease_pg(holder, ttl)
        with self.writer.begin() as conn:
            _insert_ignore(
                conn,
                scheduler_lease,
                [{"name": LEASE, "holder": holder, "expires_at": now + ttl, "acquired_at": now}],
            )
            done = conn.execute(
                scheduler_lease.update()
                .where(
                    scheduler_lease.c.name == LEASE,
                    sa.or_(scheduler_lease.c.holder == holder, scheduler_lease.c.expires_at < now),
                )
                .values(holder=holder, expires_at=now + ttl)
            )
        return bool(done.rowcount)

    def _acquire_lease_pg(self, holder: str, ttl: timedelta) -> bool:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        db_now = sa.func.now()
        expires = db_now + sa.cast(sa.literal(f"{ttl.total_seconds()} seconds"), sa.Interval)
        with self.writer.begin() as conn:
            conn.execute(
                pg_insert(scheduler_lease)
                .values(name=LEASE, holder=holder, expires_at=expires, acquired_at=db_now)
                .on_conflict_do_nothing()
            )
            done = conn.execute(
                scheduler_lease.update()
                .where(
                    scheduler_lease.c.name == LEASE,
                    sa.or_(
                        scheduler_lease.c.holder == holder, scheduler_lease.c.expires_at < db_now
                    ),
                )
                .values(holder=holder, expires_at=expires)
            )
        return bool(done.rowcount)

    def release_lease(self, holder: str) -> None:
        with self.writer.begin() as conn:
            conn.execute(
                scheduler_lease.delete().where(
                    scheduler_lease.c.name == LEASE, scheduler_lease.c.holder == holder
                )
            )

    def lease(self) -> tuple[str, datetime] | None:
        """(holder, expires_at) of the lease, or None."""
        with self.reader.connect() as conn:
            row = conn.execute(
                sa.select(scheduler_lease.c.holder, scheduler_lease.c.expires_at).where(
                    scheduler_lease.c.name == LEASE
                )
            ).first()
        return None if row is None else (row.holder, row.expires_at)


def fire_row(
    *,
    schedule: str,
    version: int,
    kind: FireKind,
    due_at: datetime,
    now: datetime,
    status: FireStatus = FireStatus.PENDING,
    reason: str | None = None,
    scheduled_for: datetime | None = None,
    event_id: str | None = None,
    params: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The values of a new fire row (every column, so rows insert in one batch)."""
    final = status in (FireStatus.SKIPPED, FireStatus.ERROR)
    return {
        "schedule": schedule,
        "version": version,
        "kind": kind.value,
        "scheduled_for": scheduled_for,
        "event_id": event_id,
        "due_at": due_at,
        "status": status.value,
        "reason": reason,
        "params": params or None,
        "trigger": trigger or None,
        "claim_token": None,
        "claimed_by": None,
        "claim_expires": None,
        "run_id": None,
        "pid": None,
        "host": None,
        "exit_code": None,
        "created_at": now,
        "started_at": None,
        "finished_at": now if final else None,
        "cancel_requested_at": None,
    }


__all__ = [
    "LIVE",
    "NewVersion",
    "ScheduleCache",
    "ScheduleStore",
    "fire_row",
    "insert_ignore_unique",
]
