"""What the scheduler reads besides the clock: published events and finished runs.

On each tick, the scheduler holding the lease (or every scheduler, without one):

- reads the **events** after its cursor (``scheduler_cursors`` row ``events``, an event
  id) and, for every live schedule whose current version has a matching ``@trigger``,
  records one fire row with the event id ``event:<id>``: to run with the mapped parameters
  (``day`` <- ``payload["date"]``), or skipped with its reason when the payload lacks a
  mapped field;
- reads the **runs finished** since its cursor (row ``runs``, a time) of the flows some
  schedule's ``@trigger_on_finish`` names and records one fire row per downstream schedule
  with the event id ``run:<run id>`` when the run's end matches ``on`` (``success``:
  succeeded; ``failure``: failed, killed, or DEAD — its process died without recording
  its end, so its heartbeat stopped; ``any``). Every run counts: by hand, scheduled, on
  Ray. The runtime writes nothing new: a run's end is its ``finished_at`` (or, for a DEAD
  run, its last heartbeat). A DEAD run that comes back and succeeds still fires the
  ``success`` schedules then (``failure`` ones have their record already).

Exactly once is the unique key ``(schedule, event_id)`` of ``schedule_fires``: a row that
exists already is not inserted again, so two schedulers reading the same event, or one
reading it twice, record it once. The cursors only skip what is certainly done: an id (or
finish time) is passed only once it is :data:`SETTLE` old, since a transaction that took an
id may commit after a later one; until then it is read again each tick (and the in-memory
``seen`` sets keep that cheap). Events and runs from before a schedule existed do not fire
it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shipyard.schedules.records import FireKind, FireStatus, ScheduleRecord
from shipyard.schedules.store import _insert_ignore, fire_row, insert_ignore_unique
from shipyard.store.events import EventRecord, events_after
from shipyard.store.records import RunStatus
from shipyard.store.schema import runs, scheduler_cursors

log = logging.getLogger("shipyard.scheduler")

#: how old an event id or a run's end must be before the cursor passes it
SETTLE = timedelta(seconds=30)
EVENTS, RUNS = "events", "runs"
#: which run endings each ``on`` of ``@trigger_on_finish`` takes
ENDINGS = {
    "success": (RunStatus.SUCCEEDED.value,),
    "failure": (RunStatus.FAILED.value, RunStatus.KILLED.value, RunStatus.DEAD.value),
    "any": tuple(s.value for s in RunStatus if s != RunStatus.RUNNING),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class FeedResult:
    """What one read of the feed recorded."""

    events: list[EventRecord] = field(default_factory=list)  # new to this scheduler
    #: (run id, dead) of the ended runs new to this scheduler (a DEAD run that comes back
    #: and ends is new again)
    runs: list[tuple[int, bool]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # fire rows offered
    inserted: int = 0  # of which were new (the others existed)
    events_passed: int | None = None  # the events cursor moved to this id
    runs_passed: set[tuple[int, bool]] = field(default_factory=set)  # the cursor is past


def event_params(
    spec: dict[str, Any], payload: dict[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """The run's parameters from ``payload`` by the trigger's mapping, or the skip reason
    naming the first missing field."""
    params: dict[str, Any] = {}
    for parameter, source in (spec.get("parameters") or {}).items():
        if source not in payload:
            return {}, f"payload has no field {source!r} for parameter {parameter!r}"
        params[parameter] = payload[source]
    return params, None


class Feed:
    """Reads events and finished runs into fire rows (see the module docstring)."""

    def __init__(
        self,
        *,
        settle: timedelta = SETTLE,
        batch: int = 500,
        dead_after: timedelta | None = None,
    ) -> None:
        self.settle, self.batch = settle, batch
        #: a RUNNING run without a heartbeat for this long has died (the metadata store's
        #: rule; the scheduler sets it from its store)
        self.dead_after = dead_after
        self._seen_events: set[int] = set()
        self._seen_runs: set[tuple[int, bool]] = set()

    def read(
        self, conn: sa.Connection, schedules: Sequence[ScheduleRecord], now: datetime
    ) -> FeedResult:
        """Record the fire rows of new events and finished runs, in ``conn``'s transaction;
        call :meth:`done` with the result once it has committed (until then nothing counts
        as seen: a transaction that fails leaves them to be read again)."""
        result = FeedResult()
        self._events(conn, schedules, now, result)
        self._runs(conn, schedules, now, result)
        if result.rows:
            result.inserted = insert_ignore_unique(conn, result.rows)
        return result

    def done(self, result: FeedResult) -> None:
        """``result``'s transaction committed: its events and runs are seen (and those the
        cursors passed need not be remembered)."""
        self._seen_events.update(e.id for e in result.events)
        self._seen_runs.update(result.runs)
        if result.events_passed is not None:
            passed = result.events_passed
            self._seen_events = {i for i in self._seen_events if i > passed}
        self._seen_runs -= result.runs_passed

    # --- events -----------------------------------------------------------------------------
    def _events(
        self,
        conn: sa.Connection,
        schedules: Sequence[ScheduleRecord],
        now: datetime,
        result: FeedResult,
    ) -> None:
        position = int(_cursor(conn, EVENTS)[0] or 0)
        by_name: dict[str, list[tuple[ScheduleRecord, dict[str, Any]]]] = {}
        for record in schedules:
            taken: set[str] = set()
            for spec in record.current.triggers:
                name = spec.get("name")
                if spec.get("type") == "event" and name not in taken:
                    taken.add(str(name))
                    by_name.setdefault(str(name), []).append((record, spec))
        settled_upto = position
        contiguous = True
        after = position
        while True:
            page = events_after(conn, after, self.batch)
            for event in page:
                if event.id not in self._seen_events:
                    result.events.append(event)
                    for record, spec in by_name.get(event.name, ()):
                        if event.published_at < record.created_at:
                            continue  # published before the schedule existed
                        result.rows.append(self._event_row(record, spec, event, now))
                if contiguous and event.published_at <= now - self.settle:
                    settled_upto = event.id
                else:
                    contiguous = False
            if len(page) < self.batch:
                break
            after = page[-1].id
        if settled_upto > position:
            _move(conn, EVENTS, now, position=settled_upto)
            result.events_passed = settled_upto

    @staticmethod
    def _event_row(
        record: ScheduleRecord, spec: dict[str, Any], event: EventRecord, now: datetime
    ) -> dict[str, Any]:
        params, skip = event_params(spec, event.payload)
        return fire_row(
            schedule=record.name,
            version=record.version,
            kind=FireKind.EVENT,
            event_id=f"event:{event.id}",
            due_at=now,
            now=now,
            status=FireStatus.SKIPPED if skip else FireStatus.PENDING,
            reason=skip,
            params=params,
            trigger={
                "event": event.name,
                "payload": event.payload,
                "event_id": event.id,
                "published_by": event.published_by,
                "source": event.source,
            },
        )

    # --- finished runs ----------------------------------------------------------------------
    def _runs(
        self,
        conn: sa.Connection,
        schedules: Sequence[ScheduleRecord],
        now: datetime,
        result: FeedResult,
    ) -> None:
        downstream: dict[str, list[tuple[ScheduleRecord, str]]] = {}
        for record in schedules:
            for spec in record.current.triggers:
                if spec.get("type") == "flow":
                    pairs = downstream.setdefault(str(spec["flow"]), [])
                    if all(r.name != record.name for r, _ in pairs):
                        pairs.append((record, str(spec.get("on") or "success")))
        if not downstream:
            return
        at = _cursor(conn, RUNS)[1]
        first = min(r.created_at for pairs in downstream.values() for r, _ in pairs)
        since = at if at is not None else first
        dead_after = self.dead_after or timedelta(seconds=30)
        c = runs.c
        ended = sa.or_(
            sa.and_(c.finished_at.is_not(None), c.finished_at > since),
            # DEAD: its process died without recording the end (the heartbeat stopped)
            sa.and_(
                c.finished_at.is_(None),
                c.status == RunStatus.RUNNING.value,
                c.heartbeat_at <= now - dead_after,
                c.heartbeat_at > since - dead_after,
            ),
        )
        rows = conn.execute(
            sa.select(c.run_id, c.flow_name, c.status, c.finished_at, c.heartbeat_at)
            .where(c.flow_name.in_(list(downstream)), ended)
            .order_by(c.run_id)
        ).all()
        settled = since
        ends: dict[tuple[int, bool], datetime] = {}  # when the cursor is past it for good
        for row in rows:
            if row.finished_at is not None:
                end, status = row.finished_at, row.status
                if end <= now - self.settle:
                    settled = max(settled, end)
            else:
                end, status = row.heartbeat_at, RunStatus.DEAD.value
            seen = (int(row.run_id), row.finished_at is None)
            ends[seen] = end if row.finished_at is not None else end + dead_after
            if seen in self._seen_runs:
                continue
            result.runs.append(seen)
            for record, on in downstream.get(row.flow_name, ()):
                if end < record.created_at or status not in ENDINGS[on]:
                    continue
                result.rows.append(
                    fire_row(
                        schedule=record.name,
                        version=record.version,
                        kind=FireKind.FLOW,
                        event_id=f"run:{row.run_id}",
                        due_at=now,
                        now=now,
                        trigger={
                            "upstream_run": f"{row.flow_name}/{row.run_id}",
                            "upstream_status": status,
                            "on": on,
                        },
                    )
                )
        if settled > since or at is None:
            _move(conn, RUNS, now, at=settled)
            result.runs_passed = {seen for seen, gone in ends.items() if gone <= settled}


def _cursor(conn: sa.Connection, name: str) -> tuple[int | None, datetime | None]:
    row = conn.execute(
        sa.select(scheduler_cursors.c.position, scheduler_cursors.c.at).where(
            scheduler_cursors.c.name == name
        )
    ).first()
    return (None, None) if row is None else (row.position, row.at)


def _move(
    conn: sa.Connection,
    name: str,
    now: datetime,
    *,
    position: int | None = None,
    at: datetime | None = None,
) -> None:
    """Move a cursor forward (never back: another scheduler may have moved it further)."""
    c = scheduler_cursors.c
    _insert_ignore(
        conn,
        scheduler_cursors,
        [{"name": name, "position": position, "at": at, "updated_at": now}],
    )
    if position is not None:
        conn.execute(
            scheduler_cursors.update()
            .where(c.name == name, sa.or_(c.position.is_(None), c.position < position))
            .values(position=position, updated_at=now)
        )
    if at is not None:
        conn.execute(
            scheduler_cursors.update()
            .where(c.name == name, sa.or_(c.at.is_(None), c.at < at))
            .values(at=at, updated_at=now)
        )


def upstream_edges(records: Iterable[tuple[str, str, list[dict[str, Any]]]]) -> dict[str, set[str]]:
    """``{upstream flow: {downstream flow}}`` from (schedule, flow, triggers) triples."""
    edges: dict[str, set[str]] = {}
    for _name, flow, triggers in records:
        for spec in triggers:
            if spec.get("type") == "flow":
                edges.setdefault(str(spec["flow"]), set()).add(flow)
    return edges


__all__ = ["ENDINGS", "SETTLE", "Feed", "FeedResult", "event_params", "upstream_edges"]
