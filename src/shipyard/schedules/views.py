"""Read-only views of schedules for pages and listings: each fire record with what became of
it (its *outcome* and its run's status, in one query), a schedule's history a page at a time
filtered by outcome, the per-schedule counts and last fire of the schedules page, and a cron
expression in words.

>>> describe("0 */4 * * *", "Europe/Amsterdam")
'every 4 hours at :00 (Europe/Amsterdam time)'

Outcomes (what the history's filter takes)::

    run       the fire time has its run (``run_id`` set)
    skipped   recorded as skipped, with the reason (missed, overlap, paused, deleted)
    queued    waiting for an earlier run or the global cap, with the reason
    failed    no run came of it: the scheduler could not start it, or its launcher ended
              before the run existed (the reason or the exit code says)
    pending   due, not started yet (pending, claimed, or started without a run so far)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from shipyard.schedules.cron import Cron
from shipyard.schedules.errors import CronError
from shipyard.schedules.records import FireKind, FireStatus
from shipyard.schedules.store import ScheduleStore
from shipyard.store.records import RunStatus
from shipyard.store.schema import runs, schedule_fires

OUTCOMES = ("run", "skipped", "queued", "failed", "pending")

_F = schedule_fires.c
_NO_RUN_YET = sa.and_(_F.status == FireStatus.STARTED.value, _F.run_id.is_(None))
_WHERE: dict[str, sa.ColumnElement[bool]] = {
    "run": _F.run_id.is_not(None),
    "skipped": _F.status == FireStatus.SKIPPED.value,
    "queued": _F.status == FireStatus.QUEUED.value,
    "failed": sa.or_(
        _F.status == FireStatus.ERROR.value, sa.and_(_NO_RUN_YET, _F.exit_code.is_not(None))
    ),
    "pending": sa.or_(
        _F.status.in_([FireStatus.PENDING.value, FireStatus.CLAIMED.value]),
        sa.and_(_NO_RUN_YET, _F.exit_code.is_(None)),
    ),
}


@dataclass(frozen=True)
class FireRow:
    """One fire record as a page shows it."""

    id: int
    schedule: str
    version: int
    kind: FireKind
    scheduled_for: datetime | None  # the fire time (schedule, backfill)
    event_id: str | None
    due_at: datetime
    status: FireStatus
    reason: str | None
    trigger: dict[str, Any]
    run_id: int | None
    exit_code: int | None
    created_at: datetime
    finished_at: datetime | None
    run_flow: str | None  # the run's flow and status, when it exists
    run_status: str | None

    @property
    def fire_time(self) -> datetime:
        """The fire time, or when an event or manual trigger was due."""
        return self.scheduled_for or self.due_at

    @property
    def outcome(self) -> str:
        """One of :data:`OUTCOMES` (see the module)."""
        if self.run_id is not None:
            return "run"
        if self.status is FireStatus.SKIPPED:
            return "skipped"
        if self.status is FireStatus.QUEUED:
            return "queued"
        if self.status is FireStatus.ERROR or self.exit_code is not None:
            return "failed"
        return "pending"

    @property
    def explanation(self) -> str | None:
        """The reason, or for a launcher that ended without a run, its exit code."""
        if self.reason:
            return self.reason
        if self.outcome == "failed" and self.exit_code is not None:
            return f"the launcher exited with code {self.exit_code} before the run existed"
        return None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _select() -> sa.Select[Any]:
    return sa.select(
        schedule_fires,
        runs.c.flow_name.label("run_flow"),
        runs.c.status.label("run_status"),
        runs.c.heartbeat_at.label("run_heartbeat"),
    ).outerjoin(runs, runs.c.run_id == _F.run_id)


def _row(row: Any, store: ScheduleStore, now: datetime) -> FireRow:
    status = row.run_status
    heartbeat = _aware(row.run_heartbeat)
    if status == RunStatus.RUNNING.value and (
        heartbeat is None or heartbeat < now - store.meta.dead_after
    ):
        status = RunStatus.DEAD.value  # its heartbeat stopped, as MetaStore reads it
    return FireRow(
        id=row.id,
        schedule=row.schedule,
        version=row.version,
        kind=FireKind(row.kind),
        scheduled_for=_aware(row.scheduled_for),
        event_id=row.event_id,
        due_at=_aware(row.due_at) or now,
        status=FireStatus(row.status),
        reason=row.reason,
        trigger=dict(row.trigger or {}),
        run_id=row.run_id,
        exit_code=row.exit_code,
        created_at=_aware(row.created_at) or now,
        finished_at=_aware(row.finished_at),
        run_flow=row.run_flow,
        run_status=status,
    )


def history(
    store: ScheduleStore, name: str, *, outcome: str | None = None, limit: int, offset: int = 0
) -> tuple[list[FireRow], int]:
    """One page of ``name``'s fire records, latest fire time first, of one ``outcome`` (or
    all), and how many there are in all."""
    if outcome is not None and outcome not in _WHERE:
        raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    where = _F.schedule == name
    if outcome is not None:
        where = sa.and_(where, _WHERE[outcome])
    query = (
        _select()
        .where(where)
        .order_by(sa.func.coalesce(_F.scheduled_for, _F.due_at).desc(), _F.id.desc())
        .limit(limit)
        .offset(offset or None)
    )
    now = datetime.now(UTC)
    with store.reader.connect() as conn:
        total = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(schedule_fires).where(where)
            ).scalar_one()
        )
        rows = [_row(r, store, now) for r in conn.execute(query)]
    return rows, total


@dataclass(frozen=True)
class Summary:
    """What the schedules page shows of one schedule's fire records."""

    counts: dict[str, int]  # outcome -> how many records
    last: FireRow | None  # the one of the latest fire time


def summaries(store: ScheduleStore, name: str | None = None) -> dict[str, Summary]:
    """Every schedule's (or only ``name``'s) counts by outcome and its last fire (the
    latest fire time), in two queries (schedules without records are absent)."""
    cases = [
        sa.func.sum(sa.case((clause, 1), else_=0)).label(outcome)
        for outcome, clause in _WHERE.items()
    ]
    counted = sa.select(_F.schedule, *cases).group_by(_F.schedule)
    rank = sa.func.row_number().over(
        partition_by=_F.schedule,
        order_by=(sa.func.coalesce(_F.scheduled_for, _F.due_at).desc(), _F.id.desc()),
    )
    ranked = sa.select(_F.id, rank.label("rank"))
    if name is not None:
        counted, ranked = counted.where(_F.schedule == name), ranked.where(_F.schedule == name)
    firsts = ranked.subquery()
    newest = sa.select(firsts.c.id).where(firsts.c.rank == 1).scalar_subquery()
    now = datetime.now(UTC)
    with store.reader.connect() as conn:
        counts = {
            r.schedule: {o: int(getattr(r, o) or 0) for o in OUTCOMES}
            for r in conn.execute(counted)
        }
        latest = conn.execute(_select().where(_F.id.in_(newest)))
        last = {r.schedule: _row(r, store, now) for r in latest}
    return {name: Summary(counts[name], last.get(name)) for name in counts}


# --- a cron expression in words ------------------------------------------------------------
_MACRO_WORDS = {
    "@hourly": "every hour at :00",
    "@daily": "every day at 00:00",
    "@midnight": "every day at 00:00",
    "@weekly": "every Sunday at 00:00",
    "@monthly": "on day 1 of every month at 00:00",
    "@yearly": "on 1 January at 00:00",
    "@annually": "on 1 January at 00:00",
}
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_NAMES = (
    "January February March April May June July August September October November December"
).split()


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _step(text: str) -> int | None:
    """n for ``*/n`` (n > 1), else None."""
    if text.startswith("*/") and text[2:].isdigit() and int(text[2:]) > 1:
        return int(text[2:])
    return None


def _clock(cron: Cron, minute: str, hour: str) -> str | None:
    minutes, hours = cron.minutes, cron.hours
    minute = "*" if minute == "*/1" else minute
    hour = "*" if hour == "*/1" else hour
    if minute == "*" and hour == "*":
        return "every minute"
    if _step(minute) and hour == "*":
        return f"every {_step(minute)} minutes"
    if len(minutes) != 1:
        return None
    at = f":{minutes[0]:02d}"
    if hour == "*":
        return f"every hour at {at}"
    if _step(hour):
        return f"every {_step(hour)} hours at {at}"
    if len(hours) <= 6:
        return "at " + _listed([f"{h:02d}:{minutes[0]:02d}" for h in hours])
    return None


def _days(cron: Cron, month: str) -> str | None:
    either = []  # cron's rule: with both restricted, a day matching either one fires
    if not cron.any_weekday:
        weekdays = sorted({d % 7 for d in cron.weekdays})
        if weekdays == [1, 2, 3, 4, 5]:
            either.append("Monday to Friday")
        else:
            either.append("on " + _listed([_DAY_NAMES[d] + "s" for d in weekdays]))
    if not cron.any_day:
        days = sorted(cron.days)
        if len(days) > 4:
            return None
        word = "days" if len(days) > 1 else "day"
        either.append(f"on {word} {_listed([str(d) for d in days])} of the month")
    text = " or ".join(either)
    if month != "*":
        months = _listed([_MONTH_NAMES[m - 1] for m in sorted(cron.months)])
        text = f"{text} in {months}" if text else f"in {months}"
    return text


def describe(expr: str | None, timezone: str) -> str:
    """``expr`` in words with its time zone, e.g. ``every day at 06:00 (UTC)``; an
    expression too intricate for words comes back as itself. None: events only."""
    if expr is None:
        return "no timetable: events and upstream flows only"
    zone = f"({timezone} time)" if timezone.upper() != "UTC" else "(UTC)"
    text = expr.strip()
    if text.lower() in _MACRO_WORDS:
        return f"{_MACRO_WORDS[text.lower()]} {zone}"
    try:
        cron = Cron.parse(text)
    except CronError:
        return f"{text} {zone}"
    minute, hour, _dom, month, _dow = text.split()
    clock = _clock(cron, minute, hour)
    days = _days(cron, month)
    if clock is None or days is None:
        return f"{text} {zone}"
    if clock.startswith("at "):
        return f"{days or 'every day'} {clock} {zone}"
    return f"{clock}, {days} {zone}" if days else f"{clock} {zone}"


__all__ = ["OUTCOMES", "FireRow", "Summary", "describe", "history", "summaries"]
