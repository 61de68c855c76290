"""The schedules pages: every schedule with its timetable in words, its next fire times, its
pause note and the outcome of its last fire; and one schedule's versions, policies, next
fire times and history of fire records (each a run, a skip or a queued fire time with its
reason), filtered by outcome, a page at a time.

Admin keys (in the host's UI) see pause and resume buttons; the actions themselves are
:func:`shipyard.ui.actions.pause_schedule` and :func:`~shipyard.ui.actions.resume_schedule`.
Read through :mod:`shipyard.schedules` (its store, ``manage.next_times`` and ``views``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from shipyard.schedules.cron import zone
from shipyard.schedules.errors import CronError, ScheduleNotFound
from shipyard.schedules.manage import next_times
from shipyard.schedules.records import ScheduleRecord
from shipyard.schedules.store import ScheduleStore
from shipyard.schedules.views import OUTCOMES, Summary, describe, history, summaries
from shipyard.ui.context import PageError, PageNotFound, UIContext

#: fire times shown ahead: on the list, and on a schedule's page
NEXT_ON_LIST, NEXT_ON_PAGE = 3, 10
FIRES_PER_PAGE = 50
MAX_PAGE = 1_000_000


@dataclass(frozen=True)
class FireTime:
    """A fire time in UTC and on the schedule's wall clock."""

    utc: datetime
    local: str  # "2026-03-29 03:00 CEST"


@dataclass(frozen=True)
class ScheduleView:
    """One row of the schedules page."""

    record: ScheduleRecord
    words: str
    next: list[FireTime]
    summary: Summary | None


def _local(when: datetime, timezone: str) -> str:
    try:
        here = when.astimezone(zone(timezone))
    except CronError:
        return when.strftime("%Y-%m-%d %H:%M UTC")
    return here.strftime("%Y-%m-%d %H:%M ") + (here.tzname() or timezone)


def _next(record: ScheduleRecord, count: int, now: datetime) -> list[FireTime]:
    if record.paused:
        return []  # nothing is due while paused; resume says from when
    try:
        times = next_times(record, count, now)
    except CronError:
        return []
    return [FireTime(t, _local(t, record.current.timezone)) for t in times]


def _lease(store: ScheduleStore, now: datetime) -> dict[str, object]:
    """Who runs the schedules: the lease holder, or a warning that nobody does."""
    held = store.lease()
    if held is None:
        return {"scheduler": None}
    holder, expires = held
    expires = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires
    # a lease is renewed every tick (about a second): one long expired means nobody ticks
    alive = expires >= now - timedelta(seconds=60)
    return {"scheduler": holder if alive else None, "scheduler_seen": expires}


def schedules_page(ctx: UIContext, request: Request) -> Response:
    store = ScheduleStore(ctx.meta)
    now = datetime.now(UTC)
    counts = summaries(store)
    views = [
        ScheduleView(
            record=s,
            words=describe(s.current.cron, s.current.timezone),
            next=_next(s, NEXT_ON_LIST, now),
            summary=counts.get(s.name),
        )
        for s in store.list()
    ]
    return ctx.render(
        request,
        "schedules.html",
        title="Schedules",
        nav="schedules",
        schedules=views,
        paused=[v for v in views if v.record.paused],
        **_lease(store, now),
    )


def _filters(request: Request) -> tuple[str | None, int]:
    params = request.query_params
    outcome = params.get("outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        raise PageError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    page_text = params.get("page") or "1"
    if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
        raise PageError(f"page {page_text!r} is not a page number (1, 2, ...)")
    return outcome, int(page_text)


def schedule_page(ctx: UIContext, request: Request) -> Response:
    name = request.path_params["name"]
    outcome, page = _filters(request)
    store = ScheduleStore(ctx.meta)
    try:
        record = store.get(name)
    except ScheduleNotFound as exc:
        raise PageNotFound(exc.message) from None
    now = datetime.now(UTC)
    fires, total = history(
        store, name, outcome=outcome, limit=FIRES_PER_PAGE, offset=(page - 1) * FIRES_PER_PAGE
    )
    summary = summaries(store, name).get(name)

    def page_query(number: int) -> str:
        values = {"outcome": outcome} if outcome else {}
        if number != 1:
            values["page"] = str(number)
        return urlencode(values)

    return ctx.render(
        request,
        "schedule.html",
        title=f"Schedule {name}",
        nav="schedules",
        schedule=record,
        words=describe(record.current.cron, record.current.timezone),
        policies=record.current.policies.to_json(),
        next=_next(record, NEXT_ON_PAGE, now),
        versions=list(reversed(store.versions(name))),
        fires=fires,
        total=total,
        counts=summary.counts if summary else dict.fromkeys(OUTCOMES, 0),
        outcome=outcome,
        outcomes=OUTCOMES,
        page=page,
        has_next=page * FIRES_PER_PAGE < total,
        page_query=page_query,
        **_lease(store, now),
    )


__all__ = ["FIRES_PER_PAGE", "FireTime", "ScheduleView", "schedule_page", "schedules_page"]
