"""Small line charts drawn on the server as inline SVG: the deployments pages' requests per
second, error rate and latency percentiles over the last hour (no script, no third-party code).

:func:`line_chart` turns ``(time, value)`` pairs into a :class:`Chart`; ``_chart.html`` draws
it. A None value (no requests in that interval) breaks the line instead of drawing a zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shipyard.serve.history import Point

WIDTH = 280
HEIGHT = 96
#: room for the axis labels
LEFT, RIGHT, TOP, BOTTOM = 6, 6, 16, 14
SPAN = 3600.0


@dataclass(frozen=True)
class Chart:
    """What ``_chart.html`` draws: the line as SVG path data, its scale and labels."""

    metric: str  # rps, error_rate, p50, p99
    title: str
    paths: list[str]  # one per unbroken run of values
    dots: list[tuple[float, float]]  # lone values (a run of one), drawn as dots
    points: int  # values drawn
    top_label: str  # the value at the top of the scale
    latest: str  # the newest value, formatted
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def plot(self) -> tuple[int, int, int, int]:
        """The plotting area: x0, y0, x1, y1."""
        return LEFT, TOP, self.width - RIGHT, self.height - BOTTOM


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= ``value`` (> 0)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def line_chart(
    metric: str,
    title: str,
    values: Sequence[tuple[float, float | None]],
    *,
    now: float,
    fmt: Callable[[float], str],
    span: float = SPAN,
    floor_max: float = 0.0,
) -> Chart:
    """A chart of ``values`` (UNIX time, value or None) over ``[now - span, now]``.

    The scale runs from 0 to a round number above the largest value (at least
    ``floor_max``: an idle service's error rate still shows a 0–1 % scale, not 0–0)."""
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    start = now - span
    shown = [(t, v) for t, v in values if t >= start and t <= now + 1]
    top = nice_ceiling(max([v for _, v in shown if v is not None] + [floor_max, 0.0]) or 1.0)

    def xy(t: float, v: float) -> tuple[float, float]:
        x = x0 + (x1 - x0) * (t - start) / span
        y = y1 - (y1 - y0) * min(v, top) / top
        return round(x, 1), round(y, 1)

    runs: list[list[tuple[float, float]]] = [[]]
    for t, v in shown:
        if v is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(xy(t, v))
    paths = ["M" + " L".join(f"{x:g},{y:g}" for x, y in run) for run in runs if len(run) > 1]
    dots = [run[0] for run in runs if len(run) == 1]
    latest = next((v for _, v in reversed(shown) if v is not None), None)
    return Chart(
        metric=metric,
        title=title,
        paths=paths,
        dots=dots,
        points=sum(len(run) for run in runs),
        top_label=fmt(top),
        latest=fmt(latest) if latest is not None else "–",
    )


def rate(value: float) -> str:
    """``12.5/s``."""
    return f"{value:.3g}/s" if value < 1000 else f"{value:,.0f}/s"


def percent(value: float) -> str:
    """``0.5 %``."""
    return f"{value * 100:.3g} %"


def millis(value: float) -> str:
    """Seconds shown as ``12.3 ms`` (or ``1.25 s``)."""
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"


def service_charts(points: Sequence[Point], *, now: float, span: float = SPAN) -> list[Chart]:
    """The four charts of one service: rps, error rate, p50 and p99."""
    return [
        line_chart("rps", "requests / s", [(p.at, p.rps) for p in points], now=now, fmt=rate,
                   span=span),
        line_chart("error_rate", "errors", [(p.at, p.error_rate) for p in points], now=now,
                   fmt=percent, span=span, floor_max=0.01),
        line_chart("p50", "p50 latency", [(p.at, p.p50) for p in points], now=now, fmt=millis,
                   span=span),
        line_chart("p99", "p99 latency", [(p.at, p.p99) for p in points], now=now, fmt=millis,
                   span=span),
    ]  # fmt: skip


__all__ = ["Chart", "line_chart", "millis", "nice_ceiling", "percent", "rate", "service_charts"]
