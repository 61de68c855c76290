"""A model's input signature: its ordered input columns, recorded when it is registered.

>>> sig = Signature.of({"sepal_length": float, "sepal_width": float})
>>> sig.names
('sepal_length', 'sepal_width')
>>> sig.validate([[5.1, 3.5], {"sepal_length": 4.9, "sepal_width": 3.0}])
[[5.1, 3.5], [4.9, 3.0]]

Where it comes from (:func:`infer_signature`, first that applies):

1. ``signature=`` given to ``register_model``: a ``Signature``, a dict ``{name: dtype}``, a
   list of names (any type), a pandas DataFrame (its columns and dtypes) or its ``.dtypes``;
2. a fitted scikit-learn estimator or pipeline: ``feature_names_in_`` (fitted on a
   DataFrame), else ``n_features_in_`` alone (unnamed columns ``f0``, ``f1``...). Their types
   are numbers unless the model's first step takes strings or categories (an encoder, a
   ``ColumnTransformer``): then any type;
3. ``input_example=``: a DataFrame, a 2-D array, a list of rows (lists or dicts) or one row;
4. none of these: no signature (``models show`` says so).

With ``features=`` (a ``shipyard.features.FeatureSet``), the signature also records the
feature set the model was trained with, ``feature_set: {"name", "version"}`` - in the same
record, not a second one - and, when nothing else gave columns, its features as the columns
(:func:`with_feature_set`). Records written before feature sets existed load as before
(``feature_set`` is None).

dtypes are ``float`` (any JSON number), ``int``, ``bool``, ``str`` and ``any``; a column may
have a ``shape`` (``(384,)``: a list of 384 values of the dtype; ``-1`` is any length).

:meth:`Signature.validate` is the service's one line: it raises ``shipyard.HTTPError(422)``
naming the field (``rows[0]``), so a request with 1 feature instead of 4 is answered 422, not
a 500 from inside the model.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.errors import HTTPError
from shipyard.registry.errors import ModelSpecError

__all__ = ["DTYPES", "Column", "Signature", "infer_signature", "with_feature_set"]

#: the column types a signature knows
DTYPES = ("float", "int", "bool", "str", "any")

_ALIASES = {
    "float": "float",
    "double": "float",
    "float16": "float",
    "float32": "float",
    "float64": "float",
    "number": "float",
    "int": "int",
    "integer": "int",
    "long": "int",
    "int8": "int",
    "int16": "int",
    "int32": "int",
    "int64": "int",
    "uint8": "int",
    "uint16": "int",
    "uint32": "int",
    "uint64": "int",
    "bool": "bool",
    "boolean": "bool",
    "str": "str",
    "string": "str",
    "any": "any",
    "object": "any",
}
_PYTHON_TYPES: dict[type, str] = {float: "float", int: "int", bool: "bool", str: "str"}
_WHAT = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string"}
_SHOWN_NAMES = 8  # names listed in an error message before "..."


@dataclass(frozen=True)
class Column:
    """One input column: its name, its dtype (one of :data:`DTYPES`), and a shape when each
    value is an array (``(384,)``)."""

    name: str
    dtype: str = "any"
    shape: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "dtype": self.dtype}
        if self.shape is not None:
            data["shape"] = list(self.shape)
        return data

    @property
    def type_text(self) -> str:
        """``float`` or ``float[384]``."""
        if self.shape is None:
            return self.dtype
        return self.dtype + "".join(f"[{'?' if n < 0 else n}]" for n in self.shape)


@dataclass(frozen=True)
class Signature:
    """A model's ordered input columns. ``named``: False when the names are made up
    (``f0``, ``f1``... for a model fitted on an array): rows must then be lists.
    ``source`` says where it came from (``explicit``, ``sklearn``, ``input_example``)."""

    columns: tuple[Column, ...]
    named: bool = True
    source: str = "explicit"
    #: the feature set the model was trained with: ``{"name": ..., "version": ...}``
    feature_set: Mapping[str, str] | None = None

    # --- making one --------------------------------------------------------------------
    @classmethod
    def of(cls, value: Any, *, source: str = "explicit") -> Signature:
        """A signature from what a user writes: a ``Signature``, ``{name: dtype}`` (a dtype
        is a name in :data:`DTYPES` or a numpy one, a Python type, or ``(dtype, shape)``), a
        list of names, a pandas DataFrame or its ``.dtypes``. Raises ``ModelSpecError``."""
        if isinstance(value, Signature):
            return value
        if _is_dataframe(value):
            return cls(
                tuple(_frame_column(str(n), t, value[n]) for n, t in value.dtypes.items()),
                source=source,
            )
        if _is_series(value):  # a DataFrame's .dtypes
            return cls(tuple(_column(str(n), t) for n, t in value.items()), source=source)
        if isinstance(value, Mapping):
            return cls(tuple(_column(_name(n), t) for n, t in value.items()), source=source)
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            return cls(tuple(Column(_name(n)) for n in value), source=source)
        raise ModelSpecError(
            f"signature={_short(value)} is not a signature: pass a dict of column name to "
            "dtype ({'sepal_length': 'float', ...}), a list of column names, or a pandas "
            "DataFrame"
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signature:
        """The signature :meth:`to_json` wrote."""
        columns = tuple(
            Column(
                str(c["name"]),
                str(c.get("dtype", "any")),
                tuple(int(n) for n in c["shape"]) if c.get("shape") is not None else None,
            )
            for c in data.get("columns", ())
        )
        found = data.get("feature_set")
        feature_set = (
            {"name": str(found.get("name")), "version": str(found.get("version"))}
            if isinstance(found, Mapping)
            else None
        )
        return cls(
            columns,
            named=bool(data.get("named", True)),
            source=str(data.get("source") or "explicit"),
            feature_set=feature_set,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (stored with the model version)."""
        data: dict[str, Any] = {
            "columns": [c.to_json() for c in self.columns],
            "named": self.named,
            "source": self.source,
        }
        if self.feature_set is not None:
            data["feature_set"] = dict(self.feature_set)
        return data

    # --- reading it --------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __str__(self) -> str:
        return ", ".join(f"{c.name}: {c.type_text}" for c in self.columns)

    # --- checking requests -------------------------------------------------------------
    def validate(self, rows: Any, *, field: str = "rows") -> list[list[Any]]:
        """Check a list of rows against the signature; return them as lists in column
        order (what ``model.predict`` takes).

        A row is a list of values in column order, or a dict by column name (when the
        columns are named), or a pydantic model. Raises ``shipyard.HTTPError(422)`` naming
        the first bad row's field (``rows[2]``, ``rows[2].petal_width``, ``rows[2][3]``) and
        listing every bad row in ``items`` (each one's own error in ``item_errors``): raised
        in a batched endpoint over the rows, only the requests holding them get a 422, each
        about its own first bad row, counted in its own list.
        """
        if hasattr(rows, "tolist") and not isinstance(rows, list):
            rows = rows.tolist()  # a numpy array
        if not isinstance(rows, Sequence) or isinstance(rows, str | bytes | Mapping):
            raise HTTPError(422, f"expected a list of rows, got {_short(rows)}", field=field)
        ordered: list[list[Any]] = []
        errors: dict[int, HTTPError] = {}
        for index, row in enumerate(rows):
            try:
                ordered.append(self._row(row, f"{field}[{index}]"))
            except HTTPError as exc:
                errors[index] = exc
        if errors:
            first = next(iter(errors.values()))
            error = HTTPError(422, first.message, first.field, items=list(errors))
            error.item_errors = errors
            raise error
        return ordered

    def validate_row(self, row: Any, *, field: str = "features") -> list[Any]:
        """Check one row (a list in column order, or a dict by name); return it as a list
        in column order. Raises ``shipyard.HTTPError(422)`` naming ``field``."""
        return self._row(row, field)

    def _row(self, row: Any, field: str) -> list[Any]:
        if hasattr(row, "model_dump"):
            row = row.model_dump()
        elif hasattr(row, "tolist") and not isinstance(row, list):
            row = row.tolist()
        if isinstance(row, Mapping):
            return self._dict_row(row, field)
        if not isinstance(row, Sequence) or isinstance(row, str | bytes):
            raise HTTPError(
                422,
                f"expected a row of {self._expected()}, got {_short(row)}",
                field=field,
            )
        if len(row) != len(self.columns):
            raise HTTPError(422, f"expected {self._expected()}, got {len(row)}", field=field)
        for position, (column, value) in enumerate(zip(self.columns, row, strict=True)):
            self._check(column, value, f"{field}[{position}]")
        return list(row)

    def _dict_row(self, row: Mapping[str, Any], field: str) -> list[Any]:
        if not self.named:
            raise HTTPError(
                422,
                f"expected a list of {len(self.columns)} values in order (the model was "
                f"fitted without column names), got an object",
                field=field,
            )
        names = self.names
        missing = [n for n in names if n not in row]
        if missing:
            raise HTTPError(
                422,
                f"missing {_noun(missing)} {_listed(missing)}; expected {self._expected()}",
                field=f"{field}.{missing[0]}",
            )
        extra = [str(n) for n in row if n not in names]
        if extra:
            raise HTTPError(
                422,
                f"unknown {_noun(extra)} {_listed(extra)}; expected {self._expected()}",
                field=f"{field}.{extra[0]}",
            )
        for column in self.columns:
            self._check(column, row[column.name], f"{field}.{column.name}")
        return [row[n] for n in names]

    def _check(self, column: Column, value: Any, field: str) -> None:
        problem = _problem(column.dtype, column.shape, value)
        if problem is not None:
            named = f" ({column.name})" if not field.endswith("." + column.name) else ""
            raise HTTPError(422, f"{field}{named} {problem}", field=field)

    def _expected(self) -> str:
        count = _plural(len(self.columns), "feature")
        if not self.named:
            return count
        return f"{count} ({_listed(list(self.names))})"


def infer_signature(
    model: Any = None, *, signature: Any = None, input_example: Any = None
) -> Signature | None:
    """The signature to record for ``model``: the explicit one, else the model's own
    (scikit-learn), else the example's; None when nothing says (see the module doc).
    Raises ``ModelSpecError`` for an explicit ``signature`` that is not one."""
    if signature is not None:
        return Signature.of(signature)
    try:
        found = _from_sklearn(model)
    except Exception:  # an object that only looks like an estimator: it says nothing
        found = None
    if found is not None:
        if input_example is not None:  # names from the model, types from the example
            example = _from_example(input_example)
            if example is not None and example.named:
                types = {c.name: c for c in example.columns}
                columns = tuple(types.get(c.name, c) for c in found.columns)
                return Signature(columns, named=found.named, source=found.source)
        return found
    if input_example is not None:
        return _from_example(input_example)
    return None


def with_feature_set(found: Signature | None, features: Any) -> Signature:
    """``found`` (or, if None, the feature set's features as columns) recording
    ``features`` (a ``FeatureSet``: read through its ``name``, ``version``, ``names`` and
    ``dtypes``). Raises ``ModelSpecError`` when the model's columns are not the set's."""
    try:
        name, version = str(features.name), str(features.version)
        names = tuple(str(n) for n in features.names)
        dtypes = dict(features.dtypes)
    except AttributeError:
        raise ModelSpecError(
            f"features={_short(features)} is not a feature set: pass a shipyard.features.FeatureSet"
        ) from None
    ref = {"name": name, "version": version}
    if found is None:
        columns = tuple(Column(n, _ALIASES.get(str(dtypes.get(n)), "any")) for n in names)
        return Signature(columns, named=True, source="features", feature_set=ref)
    if found.named and found.names != names:
        raise ModelSpecError(
            f"the model's input columns ({_listed(list(found.names))}) are not the feature "
            f"set {name!r}'s features in order ({_listed(list(names))}); train on "
            f"features.frame(...)[list(features.names)]"
        )
    if len(found.columns) != len(names):
        raise ModelSpecError(
            f"the model takes {_plural(len(found.columns), 'column')} but the feature set "
            f"{name!r} has {_plural(len(names), 'feature')}"
        )
    return Signature(found.columns, named=found.named, source=found.source, feature_set=ref)


# --- inference ---------------------------------------------------------------------------
def _from_sklearn(model: Any) -> Signature | None:
    count: Any = getattr(model, "n_features_in_", None)
    names: Any = getattr(model, "feature_names_in_", None)
    if names is None and count is None:
        return None
    dtype = _sklearn_dtype(model)
    if names is not None:
        columns = tuple(Column(str(n), dtype) for n in names)
        return Signature(columns, named=True, source="sklearn")
    columns = tuple(Column(f"f{i}", dtype) for i in range(operator.index(count)))
    return Signature(columns, named=False, source="sklearn")


def _sklearn_dtype(model: Any) -> str:
    """``float`` unless the model's first step may take strings or categories."""
    first = model
    while True:
        steps = getattr(first, "steps", None)  # a Pipeline: its first step decides
        if not isinstance(steps, list) or not steps:
            break
        first = steps[0][1]
    if hasattr(first, "transformers"):  # a ColumnTransformer: strings go to encoders
        return "any"
    try:
        from sklearn.utils import get_tags

        tags = get_tags(first).input_tags
    except Exception:  # an older scikit-learn, or no estimator: say nothing about types
        return "any"
    return "any" if tags.string or tags.categorical else "float"


def _from_example(example: Any) -> Signature | None:
    if _is_dataframe(example):
        return Signature.of(example, source="input_example")
    if hasattr(example, "dtype") and hasattr(example, "shape"):  # a numpy array
        shape = tuple(example.shape)
        count = shape[1] if len(shape) == 2 else shape[0] if len(shape) == 1 else None
        if count is None:
            return None
        dtype = _dtype_name(example.dtype)
        columns = tuple(Column(f"f{i}", dtype) for i in range(count))
        return Signature(columns, named=False, source="input_example")
    row = example
    if isinstance(example, Sequence) and example and not isinstance(example, str | bytes):
        if isinstance(example[0], Mapping | Sequence) and not isinstance(example[0], str):
            row = example[0]  # a list of rows: the first one
    if isinstance(row, Mapping):
        columns = tuple(Column(_name(n), _value_dtype(v)) for n, v in row.items())
        return Signature(columns, named=True, source="input_example")
    if isinstance(row, Sequence) and not isinstance(row, str | bytes):
        columns = tuple(Column(f"f{i}", _value_dtype(v)) for i, v in enumerate(row))
        return Signature(columns, named=False, source="input_example")
    return None


def _column(name: str, spec: Any) -> Column:
    if isinstance(spec, Column):
        return Column(name, spec.dtype, spec.shape)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Iterable):
        dtype, shape = spec
        try:
            dims = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise ModelSpecError(
                f"signature column {name!r}: shape {shape!r} is not a tuple of ints"
            ) from None
        return Column(name, _dtype_name(dtype, name), dims)
    return Column(name, _dtype_name(spec, name))


def _frame_column(name: str, dtype: Any, values: Any) -> Column:
    """A DataFrame column: its dtype, except that an ``object`` column holding only strings
    (pandas 2's text column) is ``str``, as pandas 3's string dtype is."""
    if getattr(dtype, "kind", None) == "O":
        from pandas.api.types import infer_dtype

        if infer_dtype(values, skipna=True) == "string":
            return Column(name, "str")
    return _column(name, dtype)


def _dtype_name(spec: Any, column: str | None = None) -> str:
    if isinstance(spec, type) and spec in _PYTHON_TYPES:
        return _PYTHON_TYPES[spec]
    kind = getattr(spec, "kind", None)  # a numpy or pandas dtype
    if isinstance(kind, str) and len(kind) == 1:
        return {"f": "float", "i": "int", "u": "int", "b": "bool", "U": "str", "S": "str"}.get(
            kind, "str" if str(spec) in ("str", "string", "category") else "any"
        )
    text = str(getattr(spec, "__name__", spec)).lower()
    if text in _ALIASES:
        return _ALIASES[text]
    where = f" for column {column!r}" if column is not None else ""
    raise ModelSpecError(
        f"unknown dtype {spec!r}{where}: use one of {', '.join(DTYPES)} (or a numpy dtype, "
        "or float/int/bool/str)"
    )


def _value_dtype(value: Any) -> str:
    if hasattr(value, "dtype"):  # a numpy scalar
        return _dtype_name(value.dtype)
    return _PYTHON_TYPES.get(type(value), "any")


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ModelSpecError(f"signature column names are non-empty strings, got {value!r}")
    return value


def _is_dataframe(value: Any) -> bool:
    return type(value).__module__.startswith("pandas") and hasattr(value, "columns")


def _is_series(value: Any) -> bool:
    return type(value).__module__.startswith("pandas") and hasattr(value, "index")


# --- checking ----------------------------------------------------------------------------
def _problem(dtype: str, shape: tuple[int, ...] | None, value: Any) -> str | None:
    if shape:
        if not isinstance(value, list):
            return f"must be a list of {shape[0] if shape[0] >= 0 else 'any number of'} values"
        if shape[0] >= 0 and len(value) != shape[0]:
            return f"must have {shape[0]} values, got {len(value)}"
        for item in value:
            problem = _problem(dtype, shape[1:] or None, item)
            if problem is not None:
                return f"holds a value that {problem}"
        return None
    ok = {
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
    }.get(dtype)
    if ok is None or ok(value):
        if dtype == "float" and isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        return None
    return f"must be {_WHAT[dtype]}, got {_short(value)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _noun(names: list[str]) -> str:
    return "feature" if len(names) == 1 else "features"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN_NAMES])
    return shown + (
        f", ... ({len(names) - _SHOWN_NAMES} more)" if len(names) > _SHOWN_NAMES else ""
    )
