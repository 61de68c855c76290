"""Durations as people type them: ``"30d"``, ``"12h"``, ``"90m"``, ``"1h30m"``, ``"1.5h"``.

One grammar for every place that takes a duration: the CLI's ``--older-than``, ``--expires``
and ``--since`` options, and a cache namespace's ``max_age``. Units are ``s``, ``m``, ``h``,
``d`` and ``w``; parts add up (``1h30m``); case and spaces do not matter. A bare number in
text (``"30"``) is refused: 30 what? Code may pass seconds as a number, or a ``timedelta``.
"""

from __future__ import annotations

import re
from datetime import timedelta

#: seconds per unit
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(value: str | float | timedelta, *, what: str = "duration") -> timedelta:
    """``value`` as a timedelta: text such as ``"30d"`` or ``"1h30m"``, a number of seconds,
    or a timedelta (returned as is).

    Raises :class:`ValueError` naming ``what`` (e.g. ``"max_age"``), the bad value and the
    expected form.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    >>> parse_duration(90)
    datetime.timedelta(seconds=90)
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(
            f"bad {what} {value!r}: expected text such as '30d' or '1h30m', a number of "
            f"seconds or a timedelta, got {type(value).__name__}"
        )
    text = value.strip().lower().replace(" ", "")
    parts = _PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(
            f"bad {what} {value!r}: use numbers with a unit s/m/h/d/w, e.g. 30d, 12h, 1h30m or 1.5h"
        )
    return timedelta(seconds=sum(float(n) * UNITS[u] for n, u in parts))


__all__ = ["UNITS", "parse_duration"]
