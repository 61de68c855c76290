"""``FeatureSet.frame``: many rows at once (a training set, a replay of a serving log).

Imported only when ``frame`` is called: the row path never pays for pandas or DuckDB.

1. ``facts`` becomes a DataFrame (a list of dicts is accepted);
2. each lookup's values are found for every row: given aligned (``lookups=``) or joined
   point-in-time from its ``history`` with DuckDB's ``ASOF LEFT JOIN`` on the lookup's key
   and the row's entitled time (see :mod:`shipyard.features.lookups`); a row with no value
   gets the lookup's default;
3. each feature is its vectorised form over the whole frame where it has one, else its row
   function mapped over the rows (values reach it as plain Python: a missing value - NaN,
   NaT, None - is ``None``, as a missing field is online).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from shipyard.features.definition import Facts
from shipyard.features.errors import FeatureComputeError, FeatureDefinitionError
from shipyard.features.lookups import Lookup

if TYPE_CHECKING:
    from shipyard.features.sets import FeatureSet

__all__ = ["compute_frame", "point_in_time"]

AS_OF = "as_of"


def compute_frame(
    fs: FeatureSet,
    facts: pd.DataFrame | Sequence[Facts],
    *,
    history: Mapping[str, pd.DataFrame] | None,
    lookups: Mapping[str, pd.DataFrame] | None,
    ts: str,
    vectorized: bool,
) -> pd.DataFrame:
    frame = facts if isinstance(facts, pd.DataFrame) else pd.DataFrame(list(facts))
    given = dict(lookups or {})
    history = dict(history or {})
    for name in [*given, *history]:
        if name not in fs.lookups:
            raise FeatureDefinitionError(
                f"FeatureSet {fs.name!r} declares no lookup {name!r}; its lookups: "
                f"{', '.join(sorted(fs.lookups)) or 'none'}"
            )
    found: dict[str, pd.DataFrame] = {}
    for name, lookup in fs.lookups.items():
        if name in given:
            values = given[name]
            if len(values) != len(frame):
                raise FeatureDefinitionError(
                    f"lookups[{name!r}] has {len(values)} rows for {len(frame)} facts"
                )
            found[name] = values.reset_index(drop=True)
        elif name in history:
            found[name] = point_in_time(frame, history[name], lookup, name=name, ts=ts)
        else:
            found[name] = pd.DataFrame(index=range(len(frame)))
        found[name] = _with_default(found[name], lookup)
    records: list[dict[str, Any]] | None = None
    lookup_rows: list[dict[str, Mapping[str, Any] | None]] | None = None
    columns: dict[str, Any] = {}
    plain = frame.reset_index(drop=True)
    for item in fs.features:
        if vectorized and item.vectorized is not None:
            try:
                values = item.vectorized(plain, found)
            except Exception as exc:
                raise FeatureComputeError(
                    f"the vectorised form of feature {item.name!r} raised "
                    f"{type(exc).__name__}: {exc}",
                    feature=item.name,
                ) from exc
            values = list(values) if not hasattr(values, "__len__") else values
            if len(values) != len(plain):
                raise FeatureComputeError(
                    f"the vectorised form of feature {item.name!r} returned {len(values)} "
                    f"values for {len(plain)} rows",
                    feature=item.name,
                )
            columns[item.name] = getattr(values, "values", values)
            continue
        if records is None:
            records = _records(plain)
            lookup_rows = _lookup_rows(found, fs.lookups, len(plain))
        assert lookup_rows is not None
        fn = item.fn
        try:
            if item.takes_lookups:
                columns[item.name] = [fn(r, lk) for r, lk in zip(records, lookup_rows, strict=True)]
            else:
                columns[item.name] = [fn(r) for r in records]
        except Exception as exc:
            raise FeatureComputeError(
                f"feature {item.name!r} of {fs.name!r} raised {type(exc).__name__}: {exc}",
                feature=item.name,
            ) from exc
    return pd.DataFrame(columns, index=frame.index, columns=list(fs.names))


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = frame.to_dict("records")
    for record in records:
        for key, value in record.items():
            if _missing(value):
                record[key] = None
    return records


def _lookup_rows(
    found: Mapping[str, pd.DataFrame], declared: Mapping[str, Lookup], count: int
) -> list[dict[str, Mapping[str, Any] | None]]:
    per_lookup = {
        name: _records(found[name]) if len(found[name].columns) else None for name in declared
    }
    rows: list[dict[str, Mapping[str, Any] | None]] = []
    for i in range(count):
        row: dict[str, Mapping[str, Any] | None] = {}
        for name, lookup in declared.items():
            recs = per_lookup[name]
            value = recs[i] if recs is not None else None
            if value is not None and all(v is None for v in value.values()):
                value = None
            row[name] = lookup.default if value is None else value
        rows.append(row)
    return rows


def _with_default(values: pd.DataFrame, lookup: Lookup) -> pd.DataFrame:
    if not lookup.default:
        return values
    out = values.copy()
    for field, default in lookup.default.items():
        if field in out.columns:
            out[field] = out[field].astype(object).where(out[field].notna(), default)
        else:
            out[field] = [default] * len(out)
    return out


def _timestamps(values: pd.Series, where: str) -> pd.Series:
    """UTC timestamps without a zone (what both sides of the join compare)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        out = pd.to_datetime(values, unit="s", utc=True)
    else:
        try:
            out = pd.to_datetime(values, utc=True)
        except (ValueError, TypeError) as exc:
            raise FeatureDefinitionError(f"{where} is not a time column: {exc}") from None
    return out.dt.tz_localize(None).astype("datetime64[us]")


def point_in_time(
    facts: pd.DataFrame, history: pd.DataFrame, lookup: Lookup, *, name: str, ts: str
) -> pd.DataFrame:
    """For each row of ``facts``, the latest ``history`` row of its key whose ``as_of`` is
    at or before the row's entitled time; all-null where none. Aligned with ``facts``."""
    import duckdb

    for column, frame, what in ((lookup.key, facts, "facts"), (ts, facts, "facts")):
        if column not in frame.columns:
            raise FeatureDefinitionError(
                f"lookup {name!r}: {what} have no column {column!r} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
    for column in (lookup.key, AS_OF):
        if column not in history.columns:
            raise FeatureDefinitionError(
                f"history[{name!r}] has no column {column!r}: a lookup's history holds its "
                f"key {lookup.key!r}, {AS_OF!r} and its fields"
            )
    when = _timestamps(facts[ts], f"facts[{ts!r}]").reset_index(drop=True)
    entitled = when - pd.Timedelta(lookup.max_staleness)
    served = f"{name}.{AS_OF}"
    if served in facts.columns:  # the as-of time the service used: exact when in bounds
        used = _timestamps(facts[served], f"facts[{served!r}]").reset_index(drop=True)
        entitled = used.where(used.notna() & (used > entitled), entitled).where(
            used.isna() | (used <= when), when
        )
    left = pd.DataFrame(
        {"__row": range(len(facts)), "__key": facts[lookup.key].to_numpy(), "__at": entitled}
    )
    right = history.rename(columns={lookup.key: "__key"}).copy()
    right["__at"] = _timestamps(history[AS_OF], f"history[{name!r}].{AS_OF}").to_numpy()
    fields = [c for c in right.columns if c not in ("__key", "__at")]
    select = ", ".join(f'r."{c}"' for c in fields)
    query = (
        f"SELECT l.__row{', ' + select if select else ''} FROM l ASOF LEFT JOIN r "
        "ON l.__key = r.__key AND l.__at >= r.__at ORDER BY l.__row"
    )
    con = duckdb.connect()
    try:
        con.register("l", left)
        con.register("r", right)
        joined = con.execute(query).df()
    except duckdb.Error as exc:
        raise FeatureDefinitionError(
            f"lookup {name!r}: the point-in-time join of facts[{lookup.key!r}] with its "
            f"history failed: {exc}"
        ) from None
    finally:
        con.close()
    return joined.drop(columns="__row").reset_index(drop=True)
