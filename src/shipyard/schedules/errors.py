"""Errors of schedules and the scheduler.

::

    ScheduleError               the root: every error here is one
    ├── CronError               a cron expression or time zone that cannot be used
    ├── ScheduleDefinitionError a bad @schedule / @trigger / @trigger_on_finish, or a bad
    │                           policy flag (names the argument)
    ├── ScheduleNotFound        no schedule of that name
    ├── AdminKeyRequired        creating or changing a schedule without an admin key
    └── PublishKeyRequired      publishing an event without an events:publish (or admin) key
"""

from __future__ import annotations


class ScheduleError(Exception):
    """The root of the schedule errors; ``message`` is what to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CronError(ScheduleError, ValueError):
    """A cron expression that cannot be used: ``field`` and ``column`` (0-based) say where."""

    def __init__(
        self,
        message: str,
        *,
        expr: str | None = None,
        field: str | None = None,
        column: int | None = None,
    ) -> None:
        self.expr, self.field, self.column = expr, field, column
        where = ""
        if field is not None:
            where = f"field {field!r}"
            if column is not None:
                where += f" at column {column + 1}"
            where += ": "
        text = f"cron {expr!r}: {where}{message}" if expr is not None else message
        if expr is not None and column is not None:
            text += f"\n  {expr}\n  {' ' * column}^"
        super().__init__(text)


class ScheduleDefinitionError(ScheduleError, ValueError):
    """A decorator or a policy that cannot be used; the message names the argument."""


class ScheduleNotFound(ScheduleError, LookupError):
    """No (live) schedule has this name."""


class AdminKeyRequired(ScheduleError, PermissionError):
    """Creating or changing a schedule needs an admin key, and none valid was given."""


class PublishKeyRequired(ScheduleError, PermissionError):
    """Publishing an event needs a key with scope ``events:publish`` (or ``admin``)."""


__all__ = [
    "AdminKeyRequired",
    "CronError",
    "PublishKeyRequired",
    "ScheduleDefinitionError",
    "ScheduleError",
    "ScheduleNotFound",
]
