"""Line charts as inline SVG for the load-test report: drawn here, with no script and
nothing fetched (the UI's charts module sits in a higher layer, and draws a fixed hour).

>>> svg = line_chart([Series("p99", "#c0392b", [(0, 1.0), (1, 2.5)])], title="latency")
>>> svg.startswith("<svg")
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 40


@dataclass(frozen=True)
class Series:
    """A named line: (x, y) points, y None to break the line."""

    label: str
    colour: str
    points: Sequence[tuple[float, float | None]]
    dashed: bool = False


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at or above ``value`` (so that fifths of
    it are round too)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power  # pragma: no cover


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    x_ticks: Sequence[tuple[float, str]] | None = None,
    y_format: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """An SVG line chart of ``series`` on linear axes from 0 (x ticks: ``x_ticks`` as
    (x, label), or five even ones)."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if y is not None]
    x_min, x_max = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_max <= x_min:
        x_max = x_min + 1
    y_step = nice_ceiling(max(ys, default=0.0) / 5)
    y_top = y_step * max(1, math.ceil(max(ys, default=0.0) / y_step - 1e-9))
    x0, y0, x1, y1 = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM

    def px(x: float) -> float:
        return round(x0 + (x1 - x0) * (x - x_min) / (x_max - x_min), 1)

    def py(y: float) -> float:
        return round(y1 - (y1 - y0) * min(y, y_top) / y_top, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text x="{x0}" y="16" class="title">{escape(title)}</text>',
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" class="frame"/>',
    ]
    for k in range(round(y_top / y_step) + 1):
        value = y_step * k
        y = py(value)
        parts.append(f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" class="grid"/>')
        parts.append(
            f'<text x="{x0 - 6}" y="{y + 4}" class="ylab">{escape(y_format(value))}</text>'
        )
    ticks = x_ticks if x_ticks is not None else _even_ticks(x_min, x_max)
    for x, label in ticks:
        parts.append(f'<line x1="{px(x)}" y1="{y0}" x2="{px(x)}" y2="{y1}" class="grid"/>')
        parts.append(f'<text x="{px(x)}" y="{y1 + 16}" class="xlab">{escape(label)}</text>')
    if x_label:
        parts.append(
            f'<text x="{(x0 + x1) / 2}" y="{HEIGHT - 4}" class="xlab">{escape(x_label)}</text>'
        )
    if y_label:
        parts.append(
            f'<text x="12" y="{(y0 + y1) / 2}" class="xlab" '
            f'transform="rotate(-90 12 {(y0 + y1) / 2})">{escape(y_label)}</text>'
        )
    for n, s in enumerate(series):
        runs: list[list[tuple[float, float]]] = [[]]
        for x_value, y_value in s.points:
            if y_value is None:
                runs.append([])
            else:
                runs[-1].append((px(x_value), py(y_value)))
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        for run in runs:
            if len(run) == 1:
                parts.append(f'<circle cx="{run[0][0]}" cy="{run[0][1]}" r="2" fill="{s.colour}"/>')
            elif run:
                path = "M" + " L".join(f"{x},{y}" for x, y in run)
                parts.append(
                    f'<path d="{path}" fill="none" stroke="{s.colour}" stroke-width="1.6"{dash}/>'
                )
        lx = x1 - 130 * (len(series) - n)  # the legend sits right of the title, above the plot
        parts.append(f'<rect x="{lx}" y="10" width="12" height="3" fill="{s.colour}"/>')
        parts.append(f'<text x="{lx + 16}" y="15" class="legend">{escape(s.label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _even_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Ticks at round steps (1, 2, 5 times a power of ten), about five of them."""
    step = nice_ceiling((high - low) / 5)
    first = math.ceil(low / step) * step
    count = int((high - first) / step + 1e-9) + 1
    return [(first + k * step, f"{first + k * step:g}") for k in range(count)]


def percentile_x(percent: float, count: int) -> float:
    """Where ``percent`` sits on an HdrHistogram-style percentile axis: log10(1 / (1 - q)),
    so 90 %, 99 %, 99.9 % are evenly spaced; 100 % is put just past the last 9 the run's
    ``count`` can tell apart."""
    limit = math.log10(max(count, 10))
    if percent >= 100:
        return limit
    return min(limit, math.log10(1 / (1 - percent / 100)))


def percentile_ticks(count: int) -> list[tuple[float, str]]:
    ticks = [(0.0, "0%")]
    for nines, label in ((1, "90%"), (2, "99%"), (3, "99.9%"), (4, "99.99%"), (5, "99.999%")):
        if nines <= math.log10(max(count, 10)):
            ticks.append((float(nines), label))
    return ticks


__all__ = ["Series", "line_chart", "nice_ceiling", "percentile_ticks", "percentile_x"]
