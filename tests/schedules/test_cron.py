"""The time engine: cron fields, the two daylight-saving rules, next N."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shipyard.schedules.cron import Cron, interval_expr, to_instant, zone
from shipyard.schedules.errors import CronError

AMS = "Europe/Amsterdam"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def times(expr: str, start: datetime, end: datetime, tz: str = "UTC") -> list[datetime]:
    return list(Cron.parse(expr).fire_times(start, tz, end))


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        (
            "*/15 * * * *",
            utc(2026, 1, 1, 10, 7),
            [utc(2026, 1, 1, 10, 15), utc(2026, 1, 1, 10, 30)],
        ),
        ("0 */4 * * *", utc(2026, 1, 1, 1), [utc(2026, 1, 1, 4), utc(2026, 1, 1, 8)]),
        ("30 9 * * MON-FRI", utc(2026, 1, 2, 10), [utc(2026, 1, 5, 9, 30), utc(2026, 1, 6, 9, 30)]),
        ("0 0 1 jan,jul *", utc(2026, 2, 1), [utc(2026, 7, 1), utc(2027, 1, 1)]),
        ("0 12 29 2 *", utc(2026, 1, 1), [utc(2028, 2, 29, 12), utc(2032, 2, 29, 12)]),
        ("5-10/5 1 * * *", utc(2026, 1, 1), [utc(2026, 1, 1, 1, 5), utc(2026, 1, 1, 1, 10)]),
        # day of month and day of week both restricted: either matches (cron's rule)
        ("0 0 13 * 5", utc(2026, 2, 1), [utc(2026, 2, 6), utc(2026, 2, 13)]),
        ("0 0 * * 7", utc(2026, 1, 1), [utc(2026, 1, 4), utc(2026, 1, 11)]),  # 7 is Sunday
        ("@hourly", utc(2026, 1, 1, 0, 0), [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2)]),
        ("@weekly", utc(2026, 1, 1), [utc(2026, 1, 4), utc(2026, 1, 11)]),
        ("@monthly", utc(2026, 1, 31), [utc(2026, 2, 1), utc(2026, 3, 1)]),
    ],
)
def test_fields(expr: str, start: datetime, expected: list[datetime]) -> None:
    found: list[datetime] = []
    for when in Cron.parse(expr).fire_times(start):
        found.append(when)
        if len(found) == len(expected):
            break
    assert found == expected


def test_fire_times_are_strictly_after_and_at_most_until() -> None:
    assert times("0 * * * *", utc(2026, 1, 1, 1), utc(2026, 1, 1, 3)) == [
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]


@pytest.mark.parametrize(
    ("expr", "message", "column"),
    [
        ("0 25 * * *", "field 'hour' at column 3: 25 is out of range 0-23", 2),
        ("x * * * *", "field 'minute' at column 1: 'x' is not a number", 0),
        ("0 0 * FOO *", "field 'month' at column 7: 'FOO' is not a number", 6),
        ("*/0 * * * *", "step '0' must be a whole number above 0", 2),
        ("0 0 5-1 * *", "range '5-1' runs backwards", 4),
        ("0 0 * * MON,", "an empty list item", 12),
        ("0 0 31 2 *", "never fires", 4),
    ],
)
def test_bad_fields_name_the_field_and_column(expr: str, message: str, column: int) -> None:
    with pytest.raises(CronError) as info:
        Cron.parse(expr)
    assert message in str(info.value)
    assert info.value.column == column
    assert str(info.value).endswith(" " * column + "^")  # a caret under the mistake


def test_bad_shapes() -> None:
    with pytest.raises(CronError, match="4 fields, expected 5"):
        Cron.parse("0 */4 * *")
    with pytest.raises(CronError, match="unknown macro '@fortnightly'"):
        Cron.parse("@fortnightly")
    with pytest.raises(CronError, match="unknown time zone 'Mars/Olympus'"):
        zone("Mars/Olympus")
    with pytest.raises(CronError, match="give one of hourly, daily, weekly"):
        interval_expr(hourly=True, daily=True, weekly=False)


# --- daylight saving: 2026-03-29 (02:00 CET -> 03:00 CEST), 2026-10-25 (03:00 -> 02:00) ----
def test_a_local_time_that_does_not_exist_fires_at_the_end_of_the_gap() -> None:
    # 02:30 does not exist on 2026-03-29: it fires at 03:00 CEST = 01:00 UTC, the next valid
    # instant; the days around it fire at 02:30 local as usual
    assert times("30 2 * * *", utc(2026, 3, 27), utc(2026, 3, 31), AMS) == [
        utc(2026, 3, 27, 1, 30),  # CET, +1
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),  # the gap's end
        utc(2026, 3, 30, 0, 30),  # CEST, +2
    ]


def test_several_missing_times_and_the_gap_end_fire_once() -> None:
    # 02:00, 02:30 (missing) and 03:00 all land on 01:00 UTC: one fire, not three
    assert times("*/30 * * * *", utc(2026, 3, 29, 0, 15), utc(2026, 3, 29, 2), AMS) == [
        utc(2026, 3, 29, 0, 30),  # 01:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:00 and 02:30 missing, 03:00 CEST
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 29, 2, 0),
    ]


def test_an_ambiguous_time_fires_once_at_its_first_occurrence() -> None:
    # 02:30 happens twice on 2026-10-25 (CEST at 00:30 UTC, CET at 01:30 UTC): once, first
    assert times("30 2 * * *", utc(2026, 10, 24), utc(2026, 10, 27), AMS) == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]
    # every half hour: the repeated hour (01:00-02:00 UTC) fires nothing
    assert times("*/30 * * * *", utc(2026, 10, 24, 23, 45), utc(2026, 10, 25, 2, 30), AMS) == [
        utc(2026, 10, 25, 0, 0),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 2, 0),
        utc(2026, 10, 25, 2, 30),
    ]


def test_asking_from_inside_the_repeated_hour_does_not_fire_it_again() -> None:
    # at 01:10 UTC the wall clock says 02:10 (second time): the next fire is 03:00 CET
    assert Cron.parse("30 2 * * *").next_after(utc(2026, 10, 25, 1, 10), AMS) == utc(
        2026, 10, 26, 1, 30
    )
    assert Cron.parse("0 * * * *").next_after(utc(2026, 10, 25, 1, 10), AMS) == utc(2026, 10, 25, 2)


def test_to_instant_rules_directly() -> None:
    tz = zone(AMS)
    assert to_instant(datetime(2026, 3, 29, 2, 59), tz) == utc(2026, 3, 29, 1)
    assert to_instant(datetime(2026, 10, 25, 2, 15), tz) == utc(2026, 10, 25, 0, 15)
    assert to_instant(datetime(2026, 7, 1, 12), tz) == utc(2026, 7, 1, 10)


def test_hourly_through_both_changes_is_one_fire_per_distinct_instant() -> None:
    year = times("0 * * * *", utc(2026, 1, 1), utc(2027, 1, 1), AMS)
    assert len(year) == len(set(year))
    assert all(b > a for a, b in zip(year, year[1:], strict=False))
    # (2026-01-01 00:00, 2027-01-01 00:00] UTC holds 8760 whole hours; in March the missing
    # 02:00 fires at the gap's end, which is 03:00's instant too (one fire, no UTC hour
    # lost); in October the repeated 02:00 fires once, so one UTC hour has no fire
    assert len(year) == 8759
    gaps = [b - a for a, b in zip(year, year[1:], strict=False) if b - a != timedelta(hours=1)]
    assert gaps == [timedelta(hours=2)]  # Oct 25: 02:00 CEST (first) -> 03:00 CET
