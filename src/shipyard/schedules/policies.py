"""What a schedule does when fire times are missed, when runs overlap, and when runs fail.

=====================  =============  =====================================================
policy                 default        meaning
=====================  =============  =====================================================
``catchup``            ``"latest"``   fire times missed while no scheduler ran: ``latest``
                                      runs the newest one (the others are recorded as
                                      skipped), ``none`` runs none of them, ``all`` runs
                                      each (oldest first) up to ``catchup_max``
``catchup_window``     ``86400`` s    a missed fire time older than this is skipped
``catchup_max``        ``100``        with ``catchup="all"``: at most this many catch-up runs
``overlap``            ``"skip"``     the previous run still going: ``skip`` records the fire
                                      time as skipped, ``queue`` starts it when the previous
                                      one ends, ``allow`` starts it anyway,
                                      ``cancel-previous`` asks the previous run to stop
                                      (its launcher, on any host) and starts once it
                                      has ended
``jitter``             ``0`` s        start up to this many seconds after the fire time
                                      (the same delay for the same schedule and fire time)
``pause_on_failure``   ``0`` (never)  pause the schedule after this many failed runs in a row
``executor``           ``"local"``    ``local`` or ``ray``, as ``shipyard run --executor``
=====================  =============  =====================================================

A fire time is *missed* when it is found more than :data:`LATE_AFTER` after it was due.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from shipyard.durations import parse_duration
from shipyard.schedules.errors import ScheduleDefinitionError

CATCHUP = ("latest", "none", "all")
OVERLAP = ("skip", "queue", "allow", "cancel-previous")
EXECUTORS = ("local", "ray")
#: a fire time found this long after it was due (plus its jitter) counts as missed
LATE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Policies:
    """A schedule's policies (see the module's table for the defaults)."""

    catchup: str = "latest"
    catchup_window: int = 86400
    catchup_max: int = 100
    overlap: str = "skip"
    jitter: int = 0
    pause_on_failure: int = 0
    executor: str = "local"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policies:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def merged(self, **overrides: Any) -> Policies:
        """These policies with ``overrides`` (None: keep) applied and checked."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **check(**given))

    def jitter_for(self, schedule: str, fire_time: datetime) -> timedelta:
        """The delay of one fire time: deterministic in (schedule, fire time), so every
        scheduler agrees on it and a restart does not move it."""
        if self.jitter <= 0:
            return timedelta(0)
        digest = hashlib.sha256(f"{schedule}\0{fire_time.isoformat()}".encode()).digest()
        return timedelta(milliseconds=int.from_bytes(digest[:8], "big") % (self.jitter * 1000))


def _seconds(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ScheduleDefinitionError(f"{name}={value!r}: give seconds or a duration like '10m'")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value).total_seconds()
        except ValueError as exc:
            raise ScheduleDefinitionError(f"{name}={value!r}: {exc}") from None
    else:
        raise ScheduleDefinitionError(f"{name}={value!r}: give seconds or a duration like '10m'")
    if seconds < 0:
        raise ScheduleDefinitionError(f"{name}={value!r} is negative")
    return int(seconds)


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ScheduleDefinitionError(f"{name}={value!r}: give a whole number >= {minimum}")
    return value


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ScheduleDefinitionError(
            f"{name}={value!r}: choose one of {', '.join(repr(c) for c in choices)}"
        )
    return str(value)


def check(**given: Any) -> dict[str, Any]:
    """Validate policy values by name; a bad one raises naming the argument."""
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name == "catchup":
            out[name] = _choice(name, value, CATCHUP)
        elif name == "overlap":
            out[name] = _choice(name, value, OVERLAP)
        elif name == "executor":
            out[name] = _choice(name, value, EXECUTORS)
        elif name in ("catchup_window", "jitter"):
            out[name] = _seconds(name, value)
        elif name == "catchup_max":
            out[name] = _count(name, value, 1)
        elif name == "pause_on_failure":
            out[name] = _count(name, value, 0)
        else:
            raise ScheduleDefinitionError(f"unknown policy {name!r}")
    return out


__all__ = ["CATCHUP", "EXECUTORS", "LATE_AFTER", "OVERLAP", "Policies", "check"]
