"""The card a decision-maker reads: the forecasting options side by side, and which to adopt.

    summary = options_table(scores)             # one row per option
    choice = recommend(summary)                 # the rule, applied; a pure function
    for component in card(scores, forecasts, history, choice):
        current.card.append(component)

The options table gives each option's accuracy (mean and median MASE, sMAPE, OWA against
Naive2), its risk (the spread of per-series MASE — interquartile range and 90th percentile —
and the share of series where it is worse than seasonal naive, the ``current`` option),
its intervals (80% and 95% coverage and Winkler score), its cost (CPU seconds of fitting,
summed over series and origins) and how many series it wins (lowest MASE). Then the
per-series error distributions, fan charts of the 2 best and 2 worst series of each option
by MASE relative to seasonal naive (history, actuals, forecast, 80% and 95% bands, at the
last origin), the series whose intervals fell back to the model's own, and the
recommendation with its rule:

    **the simplest option whose mean MASE is within 2% of the best one**, simplicity being
    current < improved < lightgbm < ensemble (the single statistical models ``ets``,
    ``theta`` and ``arima``, when they are run, rank between current and improved, which
    chooses among them; a family not in that list ranks after them all).

``naive2`` is OWA's reference, not an option: it is left out of the table and of the rule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shipyard.cards import BarChart, Component, LineChart, Markdown, Table

#: the options from the simplest to the most complex; the rule prefers the earlier ones
SIMPLICITY = ("current", "ets", "theta", "arima", "improved", "lightgbm", "ensemble")
#: the four options the report is about (the others are run for comparison)
OPTIONS = ("current", "improved", "lightgbm", "ensemble")
#: families scored for reference only (OWA's denominator), never recommended
REFERENCE = ("naive2",)
#: how far (relative) above the best mean MASE an option may be and still be chosen
TOLERANCE = 0.02
#: history points shown before the forecast window in a fan chart (in seasons)
HISTORY_SEASONS = 3
#: bins of the per-series MASE histogram (the last one open-ended)
MASE_BINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
#: bins of the MASE relative to seasonal naive (below 1: better than the current option)
RELATIVE_BINS = (0.0, 0.8, 0.95, 1.05, 1.25, 2.0)


@dataclass(frozen=True)
class Recommendation:
    """Which option to adopt, and why, in words a stakeholder reads."""

    family: str
    rule: str
    reason: str
    best: str
    best_mase: float
    mase: float
    #: the options within the tolerance of the best, simplest first
    within: tuple[str, ...]
    #: how much lower the chosen option's mean MASE is than the current one's (0.12: 12%
    #: lower; negative: higher), or None when ``current`` was not scored
    vs_current: float | None


def simplicity_rank(family: str) -> tuple[int, str]:
    """The order the rule prefers: the known options first, others after them by name."""
    if family in SIMPLICITY:
        return SIMPLICITY.index(family), ""
    return len(SIMPLICITY), family


def options(scores: pd.DataFrame) -> list[str]:
    """The option families in ``scores``, simplest first (references left out)."""
    found = {str(f) for f in scores["family"].unique()} - set(REFERENCE)
    return sorted(found, key=simplicity_rank)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame:
        return pd.to_numeric(frame[name], errors="coerce")
    return pd.Series(np.nan, index=frame.index)


def _mean(values: pd.Series) -> float:
    clean = values.dropna()
    return float(clean.mean()) if len(clean) else math.nan


def options_table(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per option from the per-(family, series) ``scores``: ``family, series,
    mase_mean, mase_median, smape_mean, owa, mase_iqr, mase_p90, worse_than_naive,
    coverage_80, coverage_95, winkler_80, winkler_95, cpu_seconds, wins, fallback_series``.

    ``worse_than_naive`` is the share of series whose MASE is above the ``current``
    option's on the same series (NaN without ``current``); ``wins`` counts the series where
    the option's MASE is the lowest of all options (a tie goes to the simpler one); ``owa``
    is the M4 competition's, over the whole set: the mean of sMAPE and MASE each divided by
    Naive2's (NaN without ``naive2`` in ``scores``)."""
    missing = {"family", "series_id", "mase"} - set(scores.columns)
    if missing:
        raise ValueError(f"scores lacks the column(s) {sorted(missing)}")
    frame = scores.assign(
        family=scores["family"].astype(str), series_id=scores["series_id"].astype(str)
    )
    mase = frame.pivot_table(index="series_id", columns="family", values="mase", aggfunc="mean")
    names = options(frame)
    naive = mase["current"] if "current" in mase else None
    present = mase[[n for n in names if n in mase]]
    winners = present.apply(_winner, axis=1) if len(present.columns) else pd.Series(dtype=object)
    reference = frame[frame["family"] == "naive2"].set_index("series_id")
    rows = []
    for name in names:
        part = frame[frame["family"] == name]
        values = _column(part, "mase").dropna()
        smape = _mean(_column(part, "smape"))
        mase_mean = float(values.mean()) if len(values) else math.nan
        ref = reference.reindex(part["series_id"])
        ref_mase, ref_smape = _mean(_column(ref, "mase")), _mean(_column(ref, "smape"))
        owa = math.nan
        if ref_mase > 0 and ref_smape > 0:
            owa = 0.5 * (smape / ref_smape + mase_mean / ref_mase)
        # a series' fit_seconds is per window (the mean over its windows) when n_windows is
        # there: the option's CPU is their sum over windows
        windows = _column(part, "n_windows").fillna(1) if "n_windows" in part else 1
        worse = math.nan
        if naive is not None:
            mine = mase[name].dropna()
            paired = naive.reindex(mine.index).dropna()
            if len(paired):
                worse = float((mine.reindex(paired.index) > paired).mean())
        sources = part["interval_source"].astype(str) if "interval_source" in part else None
        rows.append(
            {
                "family": name,
                "series": int(part["series_id"].nunique()),
                "mase_mean": mase_mean,
                "mase_median": float(values.median()) if len(values) else math.nan,
                "smape_mean": smape,
                "owa": owa,
                "mase_iqr": float(values.quantile(0.75) - values.quantile(0.25))
                if len(values)
                else math.nan,
                "mase_p90": float(values.quantile(0.9)) if len(values) else math.nan,
                "worse_than_naive": worse,
                "coverage_80": _mean(_column(part, "coverage_80")),
                "coverage_95": _mean(_column(part, "coverage_95")),
                "winkler_80": _mean(_column(part, "winkler_80")),
                "winkler_95": _mean(_column(part, "winkler_95")),
                "cpu_seconds": float((_column(part, "fit_seconds").fillna(0) * windows).sum()),
                "wins": int((winners == name).sum()),
                "fallback_series": 0 if sources is None else int((sources != "conformal").sum()),
            }
        )
    return pd.DataFrame(rows)


def _winner(row: pd.Series) -> str | None:
    clean = row.dropna()
    if clean.empty:
        return None
    best = clean.min()
    return min((f for f, v in clean.items() if v == best), key=lambda f: simplicity_rank(str(f)))


def recommend(summary: pd.DataFrame, tolerance: float = TOLERANCE) -> Recommendation:
    """The rule, applied to an :func:`options_table`: the simplest option whose mean MASE is
    within ``tolerance`` (relative) of the best option's. Options without a finite mean MASE
    are not candidates; ``naive2`` never is."""
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance is a fraction between 0 and 1, got {tolerance!r}")
    column = "mase_mean" if "mase_mean" in summary else "mase"
    if "family" not in summary or column not in summary:
        raise ValueError(
            "summary needs the columns 'family' and 'mase_mean' (options_table) or 'mase' "
            "(the flow's summary)"
        )
    means = {
        str(f): float(m)
        for f, m in zip(summary["family"], summary[column], strict=True)
        if str(f) not in REFERENCE and m is not None and math.isfinite(float(m))
    }
    if not means:
        raise ValueError("no option has a mean MASE to compare: nothing was scored")
    best = min(means, key=lambda f: (means[f], simplicity_rank(f)))
    limit = means[best] * (1 + tolerance)
    within = tuple(sorted((f for f, m in means.items() if m <= limit), key=simplicity_rank))
    chosen = within[0]
    rule = (
        f"the simplest option whose mean MASE is within {tolerance:.0%} of the best "
        f"(simplest first: {' < '.join(sorted(means, key=simplicity_rank))})"
    )
    vs_current = None
    if "current" in means and means["current"] > 0:
        vs_current = 1 - means[chosen] / means["current"]
    if chosen == best:
        reason = f"{chosen} has the lowest mean MASE ({means[chosen]:.3f})"
        simpler = [f for f in means if simplicity_rank(f) < simplicity_rank(chosen)]
        if simpler:
            reason += "; no simpler option is within " + f"{tolerance:.0%} of it"
    else:
        gap = means[chosen] / means[best] - 1
        reason = (
            f"{chosen} (mean MASE {means[chosen]:.3f}) is within {gap:.1%} of the best, "
            f"{best} ({means[best]:.3f}), and simpler"
        )
    if vs_current is not None and chosen != "current":
        word = "lower" if vs_current >= 0 else "higher"
        reason += (
            f"; its mean MASE is {abs(vs_current):.1%} {word} than the current option's "
            f"({means['current']:.3f})"
        )
    return Recommendation(
        family=chosen,
        rule=rule,
        reason=reason,
        best=best,
        best_mase=means[best],
        mase=means[chosen],
        within=within,
        vs_current=vs_current,
    )


# ------------------------------------------------------------------------------ the card


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value, spec)


def _table(summary: pd.DataFrame, choice: Recommendation | None) -> Table:
    rows = []
    for r in summary.itertuples(index=False):
        mark = " ✔" if choice is not None and r.family == choice.family else ""
        rows.append(
            [
                f"{r.family}{mark}",
                r.series,
                _fmt(r.mase_mean),
                _fmt(r.mase_median),
                _fmt(r.smape_mean, ".2f"),
                _fmt(r.owa),
                _fmt(r.mase_iqr),
                _fmt(r.mase_p90),
                _fmt(r.worse_than_naive, ".0%"),
                _fmt(r.coverage_80, ".1%"),
                _fmt(r.coverage_95, ".1%"),
                _fmt(r.winkler_80, ".4g"),
                _fmt(r.winkler_95, ".4g"),
                _fmt(r.cpu_seconds, ".1f"),
                r.wins,
            ]
        )
    headers = ["option", "series", "mean MASE", "median MASE", "sMAPE %", "OWA",
               "MASE IQR", "MASE p90", "worse than naive", "80% cover", "95% cover",
               "Winkler 80", "Winkler 95", "CPU s", "series won"]  # fmt: skip
    return Table(rows, headers=headers, title="The options")


def _histogram(values: pd.Series, bins: Sequence[float]) -> list[int]:
    clean = values.dropna().to_numpy(dtype=float)
    edges = [*bins, math.inf]
    return [int(((clean >= lo) & (clean < hi)).sum()) for lo, hi in itertools.pairwise(edges)]


def _bin_labels(bins: Sequence[float]) -> list[str]:
    edges = [*bins, math.inf]
    return [
        f"{lo:g}–{hi:g}" if math.isfinite(hi) else f"≥{lo:g}"
        for lo, hi in itertools.pairwise(edges)
    ]


def relative_mase(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (family, series): ``mase`` and ``relative`` = that MASE divided by the current
    option's on the same series (1 for ``current`` itself; NaN where it cannot be had)."""
    frame = scores[["family", "series_id", "mase"]].copy()
    frame["family"], frame["series_id"] = (
        frame["family"].astype(str),
        frame["series_id"].astype(str),
    )
    naive = frame[frame["family"] == "current"].set_index("series_id")["mase"]
    base = frame["series_id"].map(naive)
    frame["relative"] = np.where(base > 0, frame["mase"] / base, np.nan)
    return frame


def extremes(scores: pd.DataFrame, family: str, n: int = 2) -> tuple[list[str], list[str]]:
    """The ``n`` best and ``n`` worst series of ``family`` by MASE relative to seasonal
    naive (by MASE itself for ``current``, or when ``current`` was not scored)."""
    frame = relative_mase(scores)
    mine = frame[frame["family"] == family]
    key = "mase" if family == "current" or mine["relative"].isna().all() else "relative"
    ranked = mine.dropna(subset=[key]).sort_values([key, "series_id"])
    ids = ranked["series_id"].tolist()
    best = ids[:n]
    worst = [s for s in reversed(ids) if s not in best][:n]
    return best, worst


def fan_chart(
    history: pd.DataFrame, forecasts: pd.DataFrame, family: str, series_id: str, title: str
) -> LineChart:
    """History, actuals, the forecast and its 80% and 95% bands at the last origin."""
    window = forecasts[
        (forecasts["family"].astype(str) == family)
        & (forecasts["unique_id"].astype(str) == series_id)
    ]
    if "origin" in window and len(window):
        window = window[window["origin"] == window["origin"].max()]
    window = window.sort_values("ds")
    past = history[history["unique_id"].astype(str) == series_id].sort_values("ds")
    if len(window):
        past = past[past["ds"] < window["ds"].min()]
    season = max(int(len(window)), 1)
    past = past.tail(HISTORY_SEASONS * max(season, 4))
    dates = [*past["ds"].tolist(), *window["ds"].tolist()]
    gap: list[float | None] = [None] * len(past)
    lines: dict[str, list[float | None]] = {
        "history": [*past["y"].tolist(), *([None] * len(window))],
        "actual": [*gap[:-1], *(past["y"].tolist()[-1:]), *window["y"].tolist()]
        if len(past)
        else window["y"].tolist(),
        "forecast": [*gap, *window["mean"].tolist()],
    }
    for level in (80, 95):
        for side in ("lo", "hi"):
            column = f"{side}_{level}"
            if column in window:
                lines[f"{level}% {side}"] = [*gap, *window[column].tolist()]
    return LineChart(x=date_labels(dates), y=lines, title=title, width=640, height=280)


def date_labels(dates: Sequence[Any]) -> list[str]:
    """Axis labels as short as the dates allow: ``2007Q3`` when every date starts a quarter,
    ``2007-08`` when every one starts a month, else the date (and the time when any has
    one)."""
    stamps = [pd.Timestamp(d) for d in dates]
    if stamps and all(s == s.normalize() and s.day == 1 for s in stamps):
        if all(s.month in (1, 4, 7, 10) for s in stamps):
            return [f"{s.year}Q{(s.month - 1) // 3 + 1}" for s in stamps]
        return [s.strftime("%Y-%m") for s in stamps]
    if all(s == s.normalize() for s in stamps):
        return [s.strftime("%Y-%m-%d") for s in stamps]
    return [s.strftime("%Y-%m-%d %H:%M") for s in stamps]


def coverage_by_origin(forecasts: pd.DataFrame) -> pd.DataFrame:
    """One row per option (``naive2`` aside): the share of actuals inside its 80% and 95%
    intervals at each origin and over all of them (``forecasts``: the backtest's rows,
    ``family, origin, y, lo_80, hi_80, lo_95, hi_95``). Coverage moves from one origin to
    the next when the origins' periods differ (a shock in one, a calm stretch in another):
    the per-origin spread says how far one quarter's intervals can be trusted."""
    frame = forecasts[~forecasts["family"].astype(str).isin(REFERENCE)]
    y = frame["y"].to_numpy(float)
    inside = {
        lv: (y >= frame[f"lo_{lv}"].to_numpy(float)) & (y <= frame[f"hi_{lv}"].to_numpy(float))
        for lv in (80, 95)
    }
    marks = frame[["family", "origin"]].assign(**{f"in_{lv}": v for lv, v in inside.items()})
    rows = []
    for family, group in marks.groupby("family", sort=False):
        row: dict[str, Any] = {"family": family}
        for lv in (80, 95):
            for origin, part in group.groupby("origin"):
                row[f"{lv}% origin {origin}"] = float(part[f"in_{lv}"].mean())
            row[f"{lv}% all"] = float(group[f"in_{lv}"].mean())
        rows.append(row)
    order = {name: simplicity_rank(name) for name in marks["family"].unique()}
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values("family", key=lambda c: c.map(order)).reset_index(drop=True)


def fallbacks(scores: pd.DataFrame) -> pd.DataFrame:
    """The (family, series) whose intervals are the model's own, not conformal (the series
    was too short for conformal windows), in all or some (``mixed``) of its windows."""
    if "interval_source" not in scores:
        return pd.DataFrame(columns=["family", "series_id", "interval_source"])
    frame = scores[scores["interval_source"].astype(str) != "conformal"]
    frame = frame[~frame["family"].astype(str).isin(REFERENCE)]
    return frame[["family", "series_id", "interval_source"]].sort_values(["family", "series_id"])


def card(
    scores: pd.DataFrame,
    forecasts: pd.DataFrame,
    history: pd.DataFrame,
    choice: Recommendation | None = None,
    *,
    title: str = "Forecast options",
    note: str | None = None,
) -> list[Component]:
    """The components of the report, to append to ``current.card`` in order."""
    summary = options_table(scores)
    choice = choice or recommend(summary)
    out: list[Component] = [Markdown(f"# {title}" + (f"\n\n{note}" if note else ""))]
    out.append(
        Markdown(
            f"## Recommendation: **{choice.family}**\n\n{choice.reason}.\n\n"
            f"Rule: {choice.rule}. Within {TOLERANCE:.0%} of the best: "
            f"{', '.join(choice.within)}."
        )
    )
    out.append(_table(summary, choice))
    out.append(
        Markdown(
            "MASE: each window's mean absolute error over the in-sample seasonal-naive MAE "
            "of that window's training part, averaged over a series' windows, then over "
            "series (lower is better). *Worse than naive*: the share of series where the "
            "option's MASE is above the current option's (seasonal naive's). Coverage: the "
            "share of actuals inside the 80% / 95% intervals (nominal 80% / 95%). Winkler: "
            "the interval's width plus a penalty for actuals outside it, scaled like MASE "
            "(lower is better). CPU: seconds of fitting, summed over series and origins. "
            "OWA: the mean of sMAPE and MASE relative to Naive2's (below 1 beats Naive2)."
        )
    )
    names = summary["family"].tolist()
    relative = relative_mase(scores)
    out.append(
        BarChart(
            x=_bin_labels(MASE_BINS),
            y={
                n: _histogram(relative.loc[relative["family"] == n, "mase"], MASE_BINS)
                for n in names
            },
            title="Series by MASE",
            xlabel="MASE",
            ylabel="series",
        )
    )
    if "current" in names and len(names) > 1:
        out.append(
            BarChart(  # current against itself is 1 everywhere: the reference bar
                x=_bin_labels(RELATIVE_BINS),
                y={
                    n: _histogram(relative.loc[relative["family"] == n, "relative"], RELATIVE_BINS)
                    for n in names
                },
                title="Series by MASE relative to seasonal naive (below 1: better)",
                xlabel="MASE / seasonal naive's MASE",
                ylabel="series",
            )
        )
    by_origin = coverage_by_origin(forecasts)
    if not by_origin.empty:
        shown = by_origin.copy()
        for column in shown.columns[1:]:
            shown[column] = shown[column].map(lambda v: _fmt(v, ".1%"))
        out.append(
            Table(
                shown,
                title="Interval coverage per origin, over every forecast of the origin "
                "(nominal 80% and 95%)",
            )
        )
    out.extend(_fans(scores, forecasts, history, names))
    out.extend(_fallback_section(scores))
    return out


def _fans(
    scores: pd.DataFrame, forecasts: pd.DataFrame, history: pd.DataFrame, names: Iterable[str]
) -> list[Component]:
    out: list[Component] = [
        Markdown(
            "## Best and worst series of each option\n\nBy MASE relative to seasonal naive "
            "(×0.5: half seasonal naive's MASE on that series; by MASE alone for the current "
            "option), at the last origin: history, actuals, the forecast and its 80% and 95% "
            "intervals."
        )
    ]
    relative = relative_mase(scores).set_index(["family", "series_id"])
    for name in names:
        best, worst = extremes(scores, name)
        for kind, ids in (("best", best), ("worst", worst)):
            for series_id in ids:
                mase = relative.loc[(name, series_id), "mase"]
                ratio = relative.loc[(name, series_id), "relative"]
                extra = "" if name == "current" or not np.isfinite(ratio) else f", ×{ratio:.2f}"
                label = f"{name}, {kind}: {series_id} (MASE {mase:.2f}{extra})"
                out.append(fan_chart(history, forecasts, name, series_id, label))
    return out


def _fallback_section(scores: pd.DataFrame) -> list[Component]:
    flagged = fallbacks(scores)
    if flagged.empty:
        return [
            Markdown("## Intervals\n\nEvery series had enough history for conformal intervals.")
        ]
    counts = flagged.groupby("family").size()
    text = ", ".join(f"{f}: {n}" for f, n in counts.items())
    return [
        Markdown(
            "## ⚠ Intervals that fell back to the model's own\n\nThese series were too "
            "short for conformal windows, so their intervals are the model's own "
            f"(`mixed`: in some windows only). Per option: {text}. Read their coverage "
            "with care."
        ),
        Table(flagged, title="Series with the model's own intervals", max_rows=50),
    ]


__all__ = [
    "OPTIONS",
    "REFERENCE",
    "SIMPLICITY",
    "TOLERANCE",
    "Recommendation",
    "card",
    "coverage_by_origin",
    "date_labels",
    "extremes",
    "fallbacks",
    "fan_chart",
    "options",
    "options_table",
    "recommend",
    "relative_mase",
    "simplicity_rank",
]
