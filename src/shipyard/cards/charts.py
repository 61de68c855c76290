"""Line and bar charts drawn on the server as inline SVG: no script, no library, nothing
fetched. Hovering a point or bar shows its value (an SVG ``<title>``).

>>> LineChart(x=[1, 2, 3], y={"train": [0.9, 0.5, 0.3], "valid": [1.0, 0.7, 0.6]},
...           title="loss", xlabel="epoch")                          # doctest: +SKIP
>>> BarChart({"a": 3, "b": 5}, title="counts")                        # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shipyard.cards.components import Component, escape

COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d")
#: points drawn as hoverable circles only up to this many per series
MAX_MARKERS = 200
#: x-axis labels shown at most (evenly thinned beyond)
MAX_LABELS = 12

_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 32, 48


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (a gap) for None, NaN, inf and non-numbers."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: float) -> str:
    return f"{round(value, 12):.6g}"


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping)


def _series(
    data: Any, x: Sequence[Any] | None, y: Any, ylabel: str | None
) -> tuple[list[Any], dict[str, list[float | None]]]:
    """(x values, {series name: y values}) from the forms the charts accept."""
    if data is not None and y is not None:
        raise TypeError("give the data either positionally or as y=, not both")
    if data is not None:
        if isinstance(data, Mapping) and not all(_is_sequence(v) for v in data.values()):
            x, y = list(data.keys()) if x is None else x, list(data.values())
        else:
            y = data
    if y is None:
        raise TypeError("a chart needs data: a dict of x -> y, a list of y, or x= and y=")
    if isinstance(y, Mapping):
        named = {str(name): list(values) for name, values in y.items()}
    elif _is_sequence(y):
        named = {ylabel or "y": list(y)}
    else:
        raise TypeError(f"y must be a list of numbers or a dict of series, got {type(y).__name__}")
    longest = max((len(v) for v in named.values()), default=0)
    xs = list(range(longest)) if x is None else list(x)
    for name, values in named.items():
        if len(values) != len(xs):
            raise ValueError(f"series {name!r} has {len(values)} values but x has {len(xs)}")
    return xs, {name: [_number(v) for v in values] for name, values in named.items()}


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if hi <= lo:
        lo, hi = lo - (abs(lo) or 1) / 2, hi + (abs(hi) or 1) / 2
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start, end = math.floor(lo / step) * step, math.ceil(hi / step) * step
    return [start + i * step for i in range(round((end - start) / step) + 1)]


class _Chart(Component):
    kind = "chart"

    def __init__(
        self,
        data: Any = None,
        *,
        x: Sequence[Any] | None = None,
        y: Any = None,
        title: str | None = None,
        xlabel: str | None = None,
        ylabel: str | None = None,
        width: int = 640,
        height: int = 320,
    ) -> None:
        self.data, self.x, self.y = data, x, y
        self.title, self.xlabel, self.ylabel = title, xlabel, ylabel
        self.width, self.height = max(int(width), 200), max(int(height), 120)

    # geometry --------------------------------------------------------------------------
    @property
    def _plot(self) -> tuple[float, float, float, float]:
        """Left, top, width, height of the plotting area."""
        return _LEFT, _TOP, self.width - _LEFT - _RIGHT, self.height - _TOP - _BOTTOM

    def _y_scale(self, values: list[float], *, zero: bool) -> tuple[list[float], Any]:
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        ticks = _ticks(lo, hi)
        left, top, _, height = self._plot
        lo, hi = ticks[0], ticks[-1]

        def scale(v: float) -> float:
            return top + height - (v - lo) / (hi - lo) * height

        return ticks, scale

    def _frame(self, body: list[str], ticks: list[float], scale: Any, names: list[str]) -> str:
        left, top, width, height = self._plot
        out = [
            f'<svg class="chart-svg {self.kind}" '
            f'viewBox="0 0 {self.width} {self.height}" width="{self.width}" '
            f'height="{self.height}" role="img" aria-label="{escape(self.title or self.kind)}">'
        ]
        if self.title:
            out.append(
                f'<text x="{self.width / 2:.1f}" y="18" text-anchor="middle" '
                f'class="chart-title">{escape(self.title)}</text>'
            )
        for tick in ticks:
            ty = scale(tick)
            out.append(
                f'<line x1="{left}" x2="{left + width}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>'
                f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>'
            )
        out.append(
            f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + height}" class="axis"/>'
            f'<line x1="{left}" x2="{left + width}" y1="{top + height}" y2="{top + height}" '
            'class="axis"/>'
        )
        out.extend(body)
        if self.xlabel:
            out.append(
                f'<text x="{left + width / 2:.1f}" y="{self.height - 6}" text-anchor="middle">'
                f"{escape(self.xlabel)}</text>"
            )
        if self.ylabel:
            cy = top + height / 2
            out.append(
                f'<text x="14" y="{cy:.1f}" text-anchor="middle" '
                f'transform="rotate(-90 14 {cy:.1f})">{escape(self.ylabel)}</text>'
            )
        if len(names) > 1:
            for i, name in enumerate(names):
                lx, colour = left + 8 + 110 * (i % 5), COLOURS[i % len(COLOURS)]
                ly = top + 4 + 14 * (i // 5)
                out.append(
                    f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{colour}"/>'
                    f'<text x="{lx + 14}" y="{ly + 9}">{escape(name[:16])}</text>'
                )
        out.append("</svg>")
        return "".join(out)

    def _x_labels(self, labels: list[str], positions: list[float]) -> list[str]:
        _, top, _, height = self._plot
        every = max(1, math.ceil(len(labels) / MAX_LABELS))
        return [
            f'<text x="{px:.1f}" y="{top + height + 16}" text-anchor="middle">'
            f"{escape(label[:14])}</text>"
            for i, (label, px) in enumerate(zip(labels, positions, strict=True))
            if i % every == 0
        ]

    def _empty(self) -> str:
        return f'<p class="muted">{escape(self.title or self.kind)}: no data to plot</p>'


class LineChart(_Chart):
    """Lines over x: ``LineChart([..y..])``, ``LineChart({x: y, ...})``,
    ``LineChart(x=[..], y=[..])`` or several series with ``y={"name": [..], ...}``.
    Numeric x values are spaced by value, others evenly. None or NaN leaves a gap."""

    kind = "line"

    def render(self) -> str:
        xs, series = _series(self.data, self.x, self.y, self.ylabel)
        values = [v for ys in series.values() for v in ys if v is not None]
        if not xs or not values:
            return self._empty()
        left, _, width, _ = self._plot
        numeric = [_number(v) for v in xs]
        clean = [n for n in numeric if n is not None]
        if len(clean) == len(xs) and len(set(clean)) > 1:
            lo, hi = min(clean), max(clean)
            positions = [left + (n - lo) / (hi - lo) * width for n in clean]
            shown = [(left + (t - lo) / (hi - lo) * width, _fmt(t)) for t in _ticks(lo, hi)]
            shown = [(p, t) for p, t in shown if left - 0.5 <= p <= left + width + 0.5]
            x_labels = self._x_labels([t for _, t in shown], [p for p, _ in shown])
        else:
            step = width / max(len(xs) - 1, 1)
            positions = [left + i * step for i in range(len(xs))]
            x_labels = self._x_labels([str(v) for v in xs], positions)
        ticks, scale = self._y_scale(values, zero=False)
        body = list(x_labels)
        for i, (name, ys) in enumerate(series.items()):
            colour = COLOURS[i % len(COLOURS)]
            segment: list[str] = []
            segments: list[list[str]] = [segment]
            for px, value in zip(positions, ys, strict=True):
                if value is None:
                    segment = []
                    segments.append(segment)
                else:
                    segment.append(f"{px:.1f},{scale(value):.1f}")
            for points in segments:
                if len(points) > 1:
                    body.append(
                        f'<polyline points="{" ".join(points)}" fill="none" '
                        f'stroke="{colour}" stroke-width="2"/>'
                    )
            if len(ys) <= MAX_MARKERS:
                for x_value, px, value in zip(xs, positions, ys, strict=True):
                    if value is not None:
                        body.append(
                            f'<circle cx="{px:.1f}" cy="{scale(value):.1f}" r="3" '
                            f'fill="{colour}"><title>{escape(name)}: x={escape(x_value)}, '
                            f"y={_fmt(value)}</title></circle>"
                        )
        return f'<div class="chart">{self._frame(body, ticks, scale, list(series))}</div>'


class BarChart(_Chart):
    """Bars per category: ``BarChart({"a": 3, "b": 5})``, ``BarChart(x=labels, y=values)``
    or grouped bars with ``y={"name": [..], ...}``."""

    kind = "bar"

    def render(self) -> str:
        xs, series = _series(self.data, self.x, self.y, self.ylabel)
        values = [v for ys in series.values() for v in ys if v is not None]
        if not xs or not values:
            return self._empty()
        left, _, width, _ = self._plot
        ticks, scale = self._y_scale(values, zero=True)
        slot = width / len(xs)
        bar = slot * 0.8 / len(series)
        base = scale(0.0)
        centres = [left + slot * (i + 0.5) for i in range(len(xs))]
        body = self._x_labels([str(v) for v in xs], centres)
        for s, (name, ys) in enumerate(series.items()):
            colour = COLOURS[s % len(COLOURS)]
            for i, (x_value, value) in enumerate(zip(xs, ys, strict=True)):
                if value is None:
                    continue
                top = min(scale(value), base)
                bx = left + slot * i + slot * 0.1 + bar * s
                body.append(
                    f'<rect x="{bx:.1f}" y="{top:.1f}" width="{max(bar - 1, 1):.1f}" '
                    f'height="{abs(base - scale(value)):.1f}" fill="{colour}">'
                    f"<title>{escape(name)}: {escape(x_value)} = {_fmt(value)}</title></rect>"
                )
        return f'<div class="chart">{self._frame(body, ticks, scale, list(series))}</div>'


__all__ = ["BarChart", "LineChart"]
