"""Which fire times of a schedule are due, and what each becomes (run, or skip and why).

Pure functions of the schedule, the cursor and *now*: the scheduler calls
:func:`plan_fires` on every tick, and tests call it with any clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shipyard.schedules.cron import Cron
from shipyard.schedules.policies import LATE_AFTER, Policies
from shipyard.schedules.records import FireStatus

#: fire times handled per schedule and tick (a long outage is worked through over ticks)
MAX_PER_TICK = 5000


@dataclass(frozen=True)
class PlannedFire:
    """One fire time and what becomes of it."""

    scheduled_for: datetime
    due_at: datetime
    status: FireStatus  # PENDING (to run) or SKIPPED
    reason: str | None


def _window(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds}s"


def plan_fires(
    name: str,
    cron: Cron,
    timezone: str,
    policies: Policies,
    cursor: datetime,
    now: datetime,
) -> tuple[list[PlannedFire], datetime]:
    """The fire times after ``cursor`` that are due by ``now`` (their jitter included), each
    to run or skipped with its reason, and the new cursor (the last of them, or ``cursor``).

    A fire time found more than :data:`LATE_AFTER` after it was due was *missed* (no
    scheduler ran): ``catchup`` decides which missed ones still run.
    """
    due: list[tuple[datetime, datetime]] = []
    for when in cron.fire_times(cursor, timezone, until=now):
        due_at = when + policies.jitter_for(name, when)
        if due_at > now or len(due) >= MAX_PER_TICK:
            break
        due.append((when, due_at))
    if not due:
        return [], cursor
    window = timedelta(seconds=policies.catchup_window)
    on_time = [now - due_at <= LATE_AFTER for _, due_at in due]
    missed = [i for i, ok in enumerate(on_time) if not ok and now - due[i][0] <= window]
    run_missed: set[int] = set()
    if policies.catchup == "latest" and missed and not any(on_time[missed[-1] :]):
        run_missed = {missed[-1]}
    elif policies.catchup == "all":
        run_missed = set(missed[-policies.catchup_max :])
    out = []
    for i, (when, due_at) in enumerate(due):
        if on_time[i] or i in run_missed:
            out.append(PlannedFire(when, due_at, FireStatus.PENDING, None))
            continue
        if now - when > window:
            reason = (
                f"missed: older than the catch-up window ({_window(policies.catchup_window)}) "
                "when a scheduler saw it"
            )
        elif policies.catchup == "none":
            reason = "missed: no scheduler ran at the time (catchup=none)"
        elif policies.catchup == "latest":
            reason = "missed: catchup=latest runs only the newest missed fire time"
        else:
            reason = f"missed: more than catchup_max={policies.catchup_max} missed fire times"
        out.append(PlannedFire(when, due_at, FireStatus.SKIPPED, reason))
    return out, due[-1][0]


def paused_fires(
    cron: Cron, timezone: str, cursor: datetime, until: datetime, note: str | None
) -> tuple[list[PlannedFire], datetime]:
    """The fire times in (``cursor``, ``until``] of a paused schedule, each skipped with the
    reason ``paused: <note>`` (no jitter: the pause is decided at the fire time), at most
    :data:`MAX_PER_TICK` of them, and the new cursor. One record per fire time, as the
    schedule would have made running: a pause hides no fire time."""
    reason = f"paused: {note or 'no note'}"
    out: list[PlannedFire] = []
    for when in cron.fire_times(cursor, timezone, until=until):
        out.append(PlannedFire(when, when, FireStatus.SKIPPED, reason))
        if len(out) >= MAX_PER_TICK:
            break
    return out, (out[-1].scheduled_for if out else cursor)


def next_due(
    name: str, cron: Cron, timezone: str, policies: Policies, cursor: datetime
) -> datetime | None:
    """When the first fire time after ``cursor`` is due (its jitter included), or None if
    there is none: until then :func:`plan_fires` plans nothing, whatever *now* is."""
    for when in cron.fire_times(cursor, timezone):
        return when + policies.jitter_for(name, when)
    return None


__all__ = ["MAX_PER_TICK", "PlannedFire", "next_due", "paused_fires", "plan_fires"]
