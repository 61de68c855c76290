"""Cron expressions evaluated in a time zone, with explicit daylight-saving rules.

>>> Cron.parse("0 */4 * * *").next_after(datetime(2026, 3, 29, tzinfo=UTC), "Europe/Amsterdam")
datetime.datetime(2026, 3, 29, 2, 0, tzinfo=datetime.timezone.utc)

Five fields, as in Vixie cron: minute (0-59), hour (0-23), day of month (1-31), month (1-12
or JAN-DEC), day of week (0-7 or SUN-SAT, 0 and 7 both Sunday). Each field is ``*``, a
number, a range ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma-separated list of those;
``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly``, ``@yearly``
(``@annually``) stand for their usual expressions. When both day of month and day of week
are restricted, a day matching either fires (cron's rule).

Times are local wall-clock times in the schedule's zone, turned into instants (UTC) by two
rules where the wall clock is not one-to-one:

- a local time that does not exist (the clock jumps forward over it) fires at the next valid
  instant, the end of the gap (02:30 on 2026-03-29 in Europe/Amsterdam fires at 03:00 CEST);
  several such times fire once;
- a local time that happens twice (the clock goes back) fires once, at its first occurrence.

The evaluation is written here over :mod:`zoneinfo` rather than taken from ``croniter``, so
these two rules are ours and tested, not a library's default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shipyard.schedules.errors import CronError

_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_MONTHS = {
    m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())
}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: leap years
#: how far ahead a search goes before it says the expression never fires
_HORIZON_YEARS = 8


def zone(name: str) -> tzinfo:
    """The time zone ``name`` (an IANA name such as ``Europe/Amsterdam``, or ``UTC``)."""
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Amsterdam' or 'UTC'"
        ) from None


@lru_cache(maxsize=256)
def _zone(name: str) -> tzinfo:
    return UTC if name.upper() == "UTC" else ZoneInfo(name)


def _value(token: str, names: dict[str, int], field: str, expr: str, col: int) -> int:
    upper = token.upper()
    if upper in names:
        return names[upper]
    if not token.isdigit():
        raise CronError(f"{token!r} is not a number", expr=expr, field=field, column=col)
    return int(token)


def _parse_field(text: str, index: int, expr: str, col: int) -> tuple[frozenset[int], bool]:
    """(the values the field allows, whether it is unrestricted ``*``)."""
    field, low, high = _FIELDS[index]
    names = _MONTHS if index == 3 else _DAYS if index == 4 else {}
    values: set[int] = set()
    offset = col
    for part in text.split(","):
        if not part:
            raise CronError("an empty list item", expr=expr, field=field, column=offset)
        body, _, step_text = part.partition("/")
        step = 1
        if step_text or part.endswith("/"):
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(
                    f"step {step_text!r} must be a whole number above 0",
                    expr=expr,
                    field=field,
                    column=offset + len(body) + 1,
                )
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start = _value(first, names, field, expr, offset)
            end = _value(last, names, field, expr, offset + len(first) + 1)
        else:
            start = _value(body, names, field, expr, offset)
            end = high if step_text else start
        for bound in (start, end):
            if not low <= bound <= high:
                raise CronError(
                    f"{bound} is out of range {low}-{high}", expr=expr, field=field, column=offset
                )
        if start > end:
            raise CronError(f"range {body!r} runs backwards", expr=expr, field=field, column=offset)
        values.update(range(start, end + 1, step))
        offset += len(part) + 1
    if index == 4 and 7 in values:  # 7 is Sunday too
        values = (values - {7}) | {0}
    # cron's own rule: a field that starts with "*" is unrestricted (day-of-month/week OR)
    return frozenset(values), text.startswith("*")


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: :meth:`parse` it, then ask for fire times."""

    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is '*'
    any_weekday: bool  # day of week is '*'

    @classmethod
    def parse(cls, expr: str) -> Cron:
        """Parse ``expr``; a mistake raises :class:`CronError` naming the field and column."""
        if not isinstance(expr, str):
            raise CronError(f"a cron expression is a string, not {expr!r}")
        text = _MACROS.get(expr.strip().lower(), expr)
        if text.strip().startswith("@"):
            raise CronError(
                f"unknown macro {expr.strip()!r}: use one of {', '.join(sorted(_MACROS))}",
                expr=expr,
            )
        parts = [(m.group(), m.start()) for m in re.finditer(r"\S+", text)]
        if len(parts) != 5:
            raise CronError(
                f"{len(parts)} fields, expected 5 (minute hour day-of-month month day-of-week), "
                "e.g. '0 */4 * * *'",
                expr=expr,
            )
        fields = [_parse_field(p, i, text, col) for i, (p, col) in enumerate(parts)]
        cron = cls(
            expr=expr,
            minutes=tuple(sorted(fields[0][0])),
            hours=tuple(sorted(fields[1][0])),
            days=fields[2][0],
            months=fields[3][0],
            weekdays=fields[4][0],
            any_day=fields[2][1],
            any_weekday=fields[4][1],
        )
        if cron.any_weekday and not any(
            d <= _DAYS_IN_MONTH[m - 1] for m in cron.months for d in cron.days
        ):
            raise CronError(
                "no month chosen has any of the days chosen, so it never fires",
                expr=expr,
                field="day of month",
                column=parts[2][1],
            )
        return cron

    # --- local (wall-clock) times --------------------------------------------------------
    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return in_week
        if self.any_weekday:
            return in_month
        return in_month or in_week

    def local_times(self, start: datetime) -> Iterator[datetime]:
        """Matching naive local times at or after ``start`` (naive), in order."""
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        first = start.replace(second=0, microsecond=0)
        if first < start:
            first += timedelta(minutes=1)
        limit = day.replace(year=day.year + _HORIZON_YEARS, day=1)
        first_day = first.replace(hour=0, minute=0)
        while day < limit:
            if day >= first_day and self._day_matches(day):
                hours: tuple[int, ...] = self.hours
                if day == first_day:  # not from midnight: a minutely cron is 1,440 a day
                    hours = tuple(h for h in hours if h >= first.hour)
                for hour in hours:
                    minutes: tuple[int, ...] = self.minutes
                    if day == first_day and hour == first.hour:
                        minutes = tuple(m for m in minutes if m >= first.minute)
                    for minute in minutes:
                        yield day.replace(hour=hour, minute=minute)
            day += timedelta(days=1)

    # --- instants -------------------------------------------------------------------------
    def next_after(self, after: datetime, timezone: str = "UTC") -> datetime:
        """The first fire instant (UTC) strictly after ``after`` (timezone-aware)."""
        for when in self.fire_times(after, timezone):
            return when
        raise CronError(f"never fires after {after.isoformat()}", expr=self.expr)

    def fire_times(
        self, after: datetime, timezone: str = "UTC", until: datetime | None = None
    ) -> Iterator[datetime]:
        """Fire instants (UTC) strictly after ``after`` and, if given, at or before
        ``until``, in order, each once."""
        if after.tzinfo is None:
            raise ValueError(f"naive datetime {after!r}: pass a timezone-aware one")
        tz = zone(timezone)
        # start a few hours back on the wall clock: a gap or a fold near ``after`` moves
        # local times across it, and instants at or before ``after`` are dropped below
        # (UTC has neither: walking back 3 h of a minutely cron was most of a plan's CPU)
        back = timedelta(0) if tz is UTC else timedelta(hours=3)
        start = after.astimezone(tz).replace(tzinfo=None) - back
        last = after.astimezone(UTC)
        for local in self.local_times(start):
            instant = to_instant(local, tz)
            if instant <= last:
                if until is not None and instant > until:
                    return
                continue
            if until is not None and instant > until:
                return
            last = instant
            yield instant


def to_instant(local: datetime, tz: tzinfo) -> datetime:
    """The instant (UTC) a naive local time fires at in ``tz``: itself if it exists once,
    its first occurrence if it is ambiguous, the end of the gap if it does not exist."""
    first = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == local:
        return first  # exists (fold=0 is the first of two occurrences, if there are two)
    # In a gap: fold=0 reads it with the offset before the jump (an instant after the gap),
    # fold=1 with the offset after it (an instant before the gap). The gap ends at the first
    # instant between them whose wall-clock time is past ``local``.
    low = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).replace(tzinfo=None) > local:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0)


def interval_expr(*, hourly: bool, daily: bool, weekly: bool) -> str | None:
    """The cron expression of ``@schedule(hourly=True)`` and its siblings (Metaflow's)."""
    chosen = [name for name, on in (("hourly", hourly), ("daily", daily), ("weekly", weekly)) if on]
    if len(chosen) > 1:
        raise CronError(f"give one of hourly, daily, weekly (got {', '.join(chosen)})")
    return {"hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 0"}.get(
        chosen[0] if chosen else "", None
    )


__all__ = ["Cron", "interval_expr", "to_instant", "zone"]
