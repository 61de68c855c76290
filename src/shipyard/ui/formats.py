"""Small formatting helpers shared by the pages and registered as Jinja2 filters."""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite hands back naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def when(value: datetime | None) -> str:
    """``2026-11-21 14:03:07`` (UTC), or an en dash for no time."""
    return utc(value).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "–"


def epoch(value: float | None) -> str:
    """A UNIX time as :func:`when` shows it."""
    return when(datetime.fromtimestamp(value, UTC)) if value is not None else "–"


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end`` (now while ``end`` is None); None without a start."""
    if start is None:
        return None
    stop = utc(end) if end is not None else datetime.now(UTC)
    return max(0.0, (stop - utc(start)).total_seconds())


def duration(seconds: float | None) -> str:
    """``850 ms``, ``12.3 s``, ``4 m 05 s``, ``2 h 10 m``; an en dash for None."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def size(count: int | None) -> str:
    """``512 B``, ``1.5 KiB``, ``3.0 MiB``."""
    if count is None:
        return "–"
    value = float(count)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover - the loop always returns


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


__all__ = ["duration", "epoch", "seconds_between", "shorten", "size", "utc", "when"]
