"""Training/serving skew: is what the service computed what training would have computed?

Three checks, each per feature, each against a threshold that can be set per feature:

- **row-level skew** (the one that proves the code paths agree): for every logged request, the
  features the service computed online against the same features recomputed offline from the
  request's logged facts, joined by request id. Numbers match within a tolerance
  (``|online - offline| <= atol + rtol * |offline|``, both missing counts as a match), anything
  else by equality. The result is the mismatch rate, with examples.
- **distribution skew**: the training set's values against the served ones. Numeric features
  are binned on the training set's quantiles (plus one bin for missing values) and compared by
  the Jensen–Shannon divergence (log base 2, so 0 ≤ JS ≤ 1) and the population stability index;
  categorical ones by the L∞ distance of their value shares (the largest change in any one
  value's share), as TFDV does.
- **prediction skew**: the logged requests replayed through the registered model offline
  against the predictions the service logged.

>>> report = check_skew(online, offline=recomputed, training=train_frame)   # doctest: +SKIP
>>> report.flagged            # [{"feature": "days_since_release", "check": "row", ...}]
>>> report.metrics()          # {"row_mismatch.days_since_release": 0.97, ...}
>>> current.card.extend(skew_components(report))   # from shipyard.cards.skew

Default thresholds (:class:`Thresholds`), and why:

=================  =========  ===============================================================
check              default    reading
=================  =========  ===============================================================
``mismatch_rate``  0.001      one request in a thousand computed differently online. Same
                              code and same inputs give exactly 0: anything above is a bug,
                              the floor only absorbs a few racing updates of an aggregate.
``rtol``/``atol``  1e-6/1e-9  float noise (JSON round trips, summation order) is not skew
``js``             0.1        Jensen–Shannon divergence, base 2. Evidently's default for its
                              JS test is 0.1 too; TFDV ships no default (its examples use
                              0.01 on small, stable sets).
``psi``            0.25       the credit-risk convention: < 0.1 stable, 0.1–0.25 moderate,
                              > 0.25 a significant shift.
``linf``           0.1        one value's share moved by ten points. TFDV's examples use 0.01,
                              which natural day-to-day drift of a popular title crosses.
=================  =========  ===============================================================

With fewer than :data:`MIN_ROWS` (100) served rows the distribution measures are shown but
never alarm: a handful of requests always looks drifted. Distribution thresholds watch
natural drift as much as bugs; the row-level check is the one
that stays at exactly zero on clean traffic however the world drifts, which is why it alarms at
0.1%. Everything is vectorised over columns with numpy (a million logged requests by fifty
features in well under two minutes on two cores: ``bench/skew.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from shipyard.features.errors import FeatureError

__all__ = [
    "BINS",
    "DistributionSkew",
    "EXAMPLES",
    "ID_COLUMN",
    "Kind",
    "MIN_ROWS",
    "PredictionSkew",
    "RowSkew",
    "SkewError",
    "SkewReport",
    "Thresholds",
    "categorical_skew",
    "check_skew",
    "distribution_skew",
    "kind_of",
    "numeric_skew",
    "prediction_skew",
    "resolve_thresholds",
    "row_skew",
]

Kind = Literal["numeric", "categorical"]

#: the column that joins a logged request to its offline recompute
ID_COLUMN = "request_id"
#: how many mismatching requests a row-level result keeps as examples
EXAMPLES = 5
#: quantile bins of a numeric feature's training values (plus one bin for missing values)
BINS = 10
#: fewer served rows than this: distribution measures are shown but never alarm (a handful of
#: requests always looks drifted; their row-level and prediction checks still count)
MIN_ROWS = 100
#: the share given to an empty bin so that PSI stays finite (Evidently uses the same floor)
_EMPTY_SHARE = 1e-4


class SkewError(FeatureError, ValueError):
    """Inputs a skew check cannot compare: names the frame and column and what to do."""


@dataclass(frozen=True)
class Thresholds:
    """The alarm thresholds of one feature's checks; a check alarms when its value is over.

    >>> Thresholds(psi=0.5)                                  # a looser PSI, defaults otherwise
    """

    #: share of requests whose online value differs from the offline recompute
    mismatch_rate: float = 0.001
    #: numeric values within ``atol + rtol * |offline|`` of each other are equal
    rtol: float = 1e-6
    atol: float = 1e-9
    #: Jensen–Shannon divergence (base 2) of a numeric feature, training vs serving
    js: float = 0.1
    #: population stability index of a numeric feature, training vs serving
    psi: float = 0.25
    #: L∞ distance of a categorical feature's value shares, training vs serving
    linf: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or value != value or value < 0:
                raise SkewError(f"threshold {f.name} must be a number >= 0, got {value!r}")


ThresholdSpec = Thresholds | Mapping[str, float]


def resolve_thresholds(
    names: Iterable[str],
    per_feature: Mapping[str, ThresholdSpec] | None = None,
    default: Thresholds | None = None,
) -> dict[str, Thresholds]:
    """Each feature's :class:`Thresholds`: ``default`` (or the documented defaults) with the
    fields ``per_feature[name]`` sets (a :class:`Thresholds` or a dict of fields)."""
    base = default or Thresholds()
    names = list(names)
    given = dict(per_feature or {})
    unknown = sorted(set(given) - set(names) - {"prediction"})
    if unknown:
        raise SkewError(
            f"thresholds name features the check does not compare: {unknown}; "
            f"the features are {sorted(names)}"
        )
    valid = {f.name for f in fields(Thresholds)}
    out: dict[str, Thresholds] = {}
    for name in [*names, "prediction"]:
        spec = given.get(name)
        if spec is None:
            out[name] = base
        elif isinstance(spec, Thresholds):
            out[name] = spec
        else:
            bad = sorted(set(spec) - valid)
            if bad:
                raise SkewError(
                    f"thresholds for {name!r}: unknown field(s) {bad}; known: {sorted(valid)}"
                )
            out[name] = replace(base, **{k: float(v) for k, v in spec.items()})
    return out


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RowSkew:
    """One feature's online values against its offline recompute, request by request."""

    feature: str
    compared: int
    mismatched: int
    threshold: float
    #: requests logged online that the offline recompute has no row for
    missing: int = 0
    #: up to :data:`EXAMPLES` mismatches: ``{"request_id", "online", "offline"}``
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0

    @property
    def flagged(self) -> bool:
        return self.rate > self.threshold


@dataclass(frozen=True)
class DistributionSkew:
    """One feature's training distribution against its serving distribution."""

    feature: str
    kind: Kind
    #: ``{"js", "psi"}`` for a numeric feature, ``{"linf"}`` for a categorical one
    measures: dict[str, float]
    thresholds: dict[str, float]
    training: int
    serving: int
    #: the bins (or values) and their shares, for the card's chart
    labels: list[str] = field(default_factory=list)
    training_share: list[float] = field(default_factory=list)
    serving_share: list[float] = field(default_factory=list)
    #: the fewest rows on either side for the measures to alarm
    min_rows: int = MIN_ROWS

    @property
    def enough(self) -> bool:
        return min(self.training, self.serving) >= self.min_rows

    @property
    def over(self) -> list[str]:
        """The measures over their thresholds (none with fewer than ``min_rows`` rows)."""
        if not self.enough:
            return []
        return [k for k, v in self.measures.items() if v > self.thresholds[k]]

    @property
    def flagged(self) -> bool:
        return bool(self.over)


@dataclass(frozen=True)
class PredictionSkew:
    """The logged predictions against the same requests replayed through the model offline."""

    compared: int
    mismatched: int
    threshold: float
    max_abs_diff: float
    mean_abs_diff: float
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.mismatched / self.compared if self.compared else 0.0

    @property
    def flagged(self) -> bool:
        return self.rate > self.threshold


@dataclass
class SkewReport:
    """All checks of one run: ``flagged`` (what alarmed) and ``metrics()``; its card is
    :func:`shipyard.cards.skew.skew_components`."""

    rows: list[RowSkew] = field(default_factory=list)
    distributions: list[DistributionSkew] = field(default_factory=list)
    prediction: PredictionSkew | None = None

    @property
    def flagged(self) -> list[dict[str, Any]]:
        """Every feature and check over its threshold: ``{"feature", "check", "value",
        "threshold"}``, row-level first (a plain list of dicts, so it stores as an artifact)."""
        out: list[dict[str, Any]] = []
        for r in self.rows:
            if r.flagged:
                out.append(_flag(r.feature, "row", r.rate, r.threshold))
        if self.prediction is not None and self.prediction.flagged:
            p = self.prediction
            out.append(_flag("prediction", "prediction", p.rate, p.threshold))
        for d in self.distributions:
            for check in d.over:
                out.append(_flag(d.feature, check, d.measures[check], d.thresholds[check]))
        return out

    @property
    def row_alarm(self) -> bool:
        """Whether any feature's online values disagree with the offline recompute."""
        return any(r.flagged for r in self.rows)

    def metrics(self) -> dict[str, float]:
        """Flat ``{"row_mismatch.<feature>": rate, "js.<feature>": ..., "flagged": n}``."""
        out: dict[str, float] = {}
        for r in self.rows:
            out[f"row_mismatch.{r.feature}"] = r.rate
        for d in self.distributions:
            for k, v in d.measures.items():
                out[f"{k}.{d.feature}"] = v
        if self.prediction is not None:
            out["prediction_mismatch"] = self.prediction.rate
            out["prediction_max_abs_diff"] = self.prediction.max_abs_diff
        out["flagged"] = float(len(self.flagged))
        return out

    def summary(self) -> str:
        """One line per alarm, or that there is none."""
        flagged = self.flagged
        if not flagged:
            return "no skew over its threshold"
        return "\n".join(
            f"{f['feature']}: {f['check']} {f['value']:.4g} > {f['threshold']:.4g}" for f in flagged
        )


def _flag(feature: str, check: str, value: float, threshold: float) -> dict[str, Any]:
    return {"feature": feature, "check": check, "value": float(value), "threshold": threshold}


# ---------------------------------------------------------------------------- checks


def kind_of(values: pd.Series) -> Kind:
    """``numeric`` for int and float columns (not bool), else ``categorical``."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    return "categorical"


def _require(frame: pd.DataFrame, what: str, columns: Sequence[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise SkewError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SkewError(
            f"{what} has no column(s) {missing}; its columns are {list(frame.columns)[:20]}"
        )


def _as_float(values: pd.Series | np.ndarray) -> np.ndarray:
    """Numbers as float64; anything that is not a number (a logged string) becomes NaN."""
    if isinstance(values, pd.Series):
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))
        coerced = pd.to_numeric(values, errors="coerce")
        return np.asarray(coerced.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=np.float64)


def _numeric_equal(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore"):
        close = np.abs(a - b) <= atol + rtol * np.abs(b)
    return np.asarray(close | both_nan | (a == b))  # a == b: equal infinities


def _categorical_equal(a: pd.Series, b: pd.Series) -> np.ndarray:
    left = a.to_numpy(dtype=object)
    right = b.to_numpy(dtype=object)
    same = np.asarray(left == right, dtype=bool)
    return np.asarray(same | (pd.isna(a).to_numpy() & pd.isna(b).to_numpy()))


def _align(
    online: pd.DataFrame, offline: pd.DataFrame, id_column: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """``offline`` reordered to ``online``'s request ids, and which ids it has."""
    ids = online[id_column]
    other = offline[id_column]
    if len(other) == 0 and len(ids):
        raise SkewError(
            f"the offline recompute is empty but the serving log has {len(ids)} requests: "
            "recompute the logged requests (FeatureSet.frame over the logged facts)"
        )
    if len(ids) == len(other) and np.array_equal(ids.to_numpy(), other.to_numpy()):
        return offline.reset_index(drop=True), np.ones(len(ids), dtype=bool)
    if other.duplicated().any():
        dup = other[other.duplicated()].iloc[0]
        raise SkewError(f"the offline recompute has request id {dup!r} more than once")
    position = pd.Index(other).get_indexer(ids)
    present = position >= 0
    aligned = offline.iloc[np.where(present, position, 0)].reset_index(drop=True)
    return aligned, present


def row_skew(
    online: pd.DataFrame,
    offline: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    thresholds: Mapping[str, ThresholdSpec] | None = None,
    default: Thresholds | None = None,
    id_column: str = ID_COLUMN,
    examples: int = EXAMPLES,
) -> list[RowSkew]:
    """Per feature, the share of requests whose logged online value differs from the offline
    recompute of the same request (joined on ``id_column``)."""
    names = list(features) if features is not None else _shared(online, offline, id_column)
    _require(online, "the serving log", [id_column, *names])
    _require(offline, "the offline recompute", [id_column, *names])
    limits = resolve_thresholds(names, thresholds, default)
    aligned, present = _align(online, offline, id_column)
    missing = int((~present).sum())
    ids = online[id_column].to_numpy()
    out = []
    for name in names:
        t = limits[name]
        left, right = online[name], aligned[name]
        if kind_of(right) == "numeric":
            a, b = _as_float(left), _as_float(right)
            equal = _numeric_equal(a, b, t.rtol, t.atol)
        else:
            equal = _categorical_equal(left.reset_index(drop=True), right)
        bad = np.flatnonzero(~equal & present)
        shown = [_example(ids[i], left.iloc[i], right.iloc[i]) for i in bad[:examples]]
        out.append(
            RowSkew(
                name,
                compared=int(present.sum()),
                mismatched=len(bad),
                threshold=t.mismatch_rate,
                missing=missing,
                examples=shown,
            )
        )
    return out


def _shared(online: pd.DataFrame, offline: pd.DataFrame, id_column: str) -> list[str]:
    return [c for c in offline.columns if c in online.columns and c != id_column]


def _example(request_id: Any, online: Any, offline: Any) -> dict[str, Any]:
    return {"request_id": _plain(request_id), "online": _plain(online), "offline": _plain(offline)}


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value (examples are stored and shown)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def numeric_skew(
    training: np.ndarray, serving: np.ndarray, bins: int = BINS
) -> tuple[dict[str, float], list[str], np.ndarray, np.ndarray]:
    """JS divergence (base 2) and PSI of ``serving`` against ``training``, binned on the
    training quantiles with one more bin for missing values; also the bins and shares."""
    known = training[~np.isnan(training)]
    if len(known):
        inner = np.quantile(known, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        edges = np.unique(inner)
    else:
        edges = np.zeros(0)
    p = _histogram(training, edges)
    q = _histogram(serving, edges)
    labels = _bin_labels(edges)
    return {"js": _js(p, q), "psi": _psi(p, q)}, labels, p, q


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    nan = np.isnan(values)
    index = np.searchsorted(edges, values[~nan], side="right")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(np.float64)
    counts = np.append(counts, float(nan.sum()))
    total = counts.sum()
    return counts / total if total else counts


def _bin_labels(edges: np.ndarray) -> list[str]:
    if not len(edges):
        return ["all", "missing"]
    shown = [f"{e:.4g}" for e in edges]
    labels = [f"< {shown[0]}"]
    labels += [f"{lo}–{hi}" for lo, hi in zip(shown[:-1], shown[1:], strict=True)]
    return [*labels, f"≥ {shown[-1]}", "missing"]


def _js(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0)
        right = np.where(q > 0, q * np.log2(q / m), 0.0)
    return float(max(0.0, 0.5 * left.sum() + 0.5 * right.sum()))


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    a = np.maximum(p, _EMPTY_SHARE)
    b = np.maximum(q, _EMPTY_SHARE)
    return float(((b - a) * np.log(b / a)).sum())


def categorical_skew(
    training: pd.Series, serving: pd.Series, top: int = BINS
) -> tuple[dict[str, float], list[str], np.ndarray, np.ndarray]:
    """L∞ distance of the value shares (missing values are a value of their own); also the
    ``top`` values that moved most, and their shares."""
    p = training.value_counts(normalize=True, dropna=False)
    q = serving.value_counts(normalize=True, dropna=False)
    both = pd.concat([p.rename("t"), q.rename("s")], axis=1).fillna(0.0)
    diff = (both["t"] - both["s"]).abs()
    linf = float(diff.max()) if len(diff) else 0.0
    moved = both.loc[diff.sort_values(ascending=False).index[:top]]
    labels = ["missing" if pd.isna(v) else str(v) for v in moved.index]
    return {"linf": linf}, labels, moved["t"].to_numpy(), moved["s"].to_numpy()


def distribution_skew(
    training: pd.DataFrame,
    serving: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    thresholds: Mapping[str, ThresholdSpec] | None = None,
    default: Thresholds | None = None,
    bins: int = BINS,
    min_rows: int = MIN_ROWS,
) -> list[DistributionSkew]:
    """Per feature, training against serving: JS and PSI for numbers, L∞ for categories.
    A feature's kind is read from the training column's dtype unless ``kinds`` names it.
    With fewer than ``min_rows`` rows on either side nothing alarms (the measures are kept)."""
    names = list(features) if features is not None else _shared(training, serving, ID_COLUMN)
    _require(training, "the training set", names)
    _require(serving, "the serving log", names)
    if bins < 2:
        raise SkewError(f"bins must be at least 2, got {bins!r}")
    limits = resolve_thresholds(names, thresholds, default)
    out = []
    for name in names:
        kind = (kinds or {}).get(name) or kind_of(training[name])
        t = limits[name]
        if kind == "numeric":
            measures, labels, p, q = numeric_skew(
                _as_float(training[name]), _as_float(serving[name]), bins
            )
            limit = {"js": t.js, "psi": t.psi}
        elif kind == "categorical":
            measures, labels, p, q = categorical_skew(training[name], serving[name], bins)
            limit = {"linf": t.linf}
        else:
            raise SkewError(f"kind of {name!r} must be 'numeric' or 'categorical', got {kind!r}")
        out.append(
            DistributionSkew(
                name,
                kind,
                measures,
                limit,
                training=len(training),
                serving=len(serving),
                labels=labels,
                training_share=[float(x) for x in p],
                serving_share=[float(x) for x in q],
                min_rows=min_rows,
            )
        )
    return out


def prediction_skew(
    logged: Sequence[Any] | np.ndarray | pd.Series,
    replayed: Sequence[Any] | np.ndarray | pd.Series,
    *,
    ids: Sequence[Any] | np.ndarray | pd.Series | None = None,
    threshold: Thresholds | None = None,
    examples: int = EXAMPLES,
) -> PredictionSkew:
    """The logged predictions against the same requests replayed offline (aligned arrays)."""
    a = _as_float(np.asarray(logged, dtype=object))
    b = _as_float(np.asarray(replayed, dtype=object))
    if len(a) != len(b):
        raise SkewError(
            f"{len(a)} logged predictions but {len(b)} replayed ones: replay every logged request"
        )
    t = threshold or Thresholds()
    equal = _numeric_equal(a, b, t.rtol, t.atol)
    bad = np.flatnonzero(~equal)
    with np.errstate(invalid="ignore"):
        diff = np.abs(a - b)
    finite = diff[np.isfinite(diff)]
    keys = np.asarray(ids, dtype=object) if ids is not None else np.arange(len(a))
    shown = [_example(keys[i], a[i], b[i]) for i in bad[:examples]]
    return PredictionSkew(
        compared=len(a),
        mismatched=len(bad),
        threshold=t.mismatch_rate,
        max_abs_diff=float(finite.max()) if len(finite) else 0.0,
        mean_abs_diff=float(finite.mean()) if len(finite) else 0.0,
        examples=shown,
    )


def check_skew(
    online: pd.DataFrame,
    *,
    offline: pd.DataFrame | None = None,
    training: pd.DataFrame | None = None,
    features: Sequence[str] | None = None,
    kinds: Mapping[str, Kind] | None = None,
    thresholds: Mapping[str, ThresholdSpec] | None = None,
    default: Thresholds | None = None,
    prediction: str | None = None,
    replayed: Sequence[Any] | np.ndarray | pd.Series | None = None,
    id_column: str = ID_COLUMN,
    bins: int = BINS,
    min_rows: int = MIN_ROWS,
) -> SkewReport:
    """Every check the inputs allow: row-level against ``offline`` (the recompute from the
    logged facts), distribution against ``training``, prediction when ``online[prediction]``
    (the logged predictions) and ``replayed`` (the model offline, aligned with ``online``)
    are given. ``features`` defaults to the columns ``online`` shares with the others."""
    report = SkewReport()
    if offline is not None:
        names = features if features is not None else _shared(online, offline, id_column)
        names = [n for n in names if n != prediction]
        report.rows = row_skew(
            online,
            offline,
            features=names,
            thresholds=thresholds,
            default=default,
            id_column=id_column,
        )
    if training is not None:
        names = features if features is not None else _shared(training, online, id_column)
        names = [n for n in names if n != prediction]
        report.distributions = distribution_skew(
            training,
            online,
            features=names,
            kinds=kinds,
            thresholds=thresholds,
            default=default,
            bins=bins,
            min_rows=min_rows,
        )
    if prediction is not None and replayed is not None:
        _require(online, "the serving log", [prediction])
        spec = (thresholds or {}).get("prediction")
        limit = resolve_thresholds([], None if spec is None else {"prediction": spec}, default)
        report.prediction = prediction_skew(
            online[prediction],
            replayed,
            ids=online[id_column] if id_column in online.columns else None,
            threshold=limit["prediction"],
        )
    return report
