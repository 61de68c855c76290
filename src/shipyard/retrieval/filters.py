"""Metadata filters over an index's chunks, evaluated once per query as a boolean mask that
both rankers search inside (so a filtered search returns ``k`` results whenever ``k`` chunks
match, however few they are — nothing is cut before it is filtered).

A filter is a mapping; every entry must hold:

- ``"path_prefix": "library/"`` — the document's path starts with it (a list: any of them);
- ``"doc": "library/os.rst"`` — the document is that one (a list: any of them);
- ``"type": "html"`` — the document's format;
- any other key names a metadata field: ``"genre": "Drama"`` (equal; strings compare
  case-insensitively; a list-valued field matches when one of its values does),
  ``"year": [2023, 2024]`` (any of), ``"rating": {"gte": 7.5}`` (``gt``, ``gte``, ``lt``,
  ``lte``, ``ne``, ``in``). A chunk without the field does not match.

>>> columns = MetaColumns(["a.md", "b.md"], ["md", "md"], [{"year": 2024}, {"year": 2020}])
>>> columns.mask({"year": {"gte": 2021}}).tolist()
[True, False]
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shipyard.retrieval.errors import FilterError

_OPS = {"gt", "gte", "lt", "lte", "ne", "in", "eq"}


def normal(value: Any) -> Any:
    """A metadata value as equality filters compare it: strings case-folded and stripped,
    numbers as floats, dates in ISO form."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return value.strip().casefold()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.date):
        return float(value.toordinal())
    return math.nan


class MetaColumns:
    """Per-field columns of the chunks' metadata, with postings (value -> rows) built on a
    field's first use, so a filter costs a few array operations, not a pass over dicts."""

    def __init__(
        self, docs: Sequence[str], types: Sequence[str], metas: Sequence[Mapping[str, Any]]
    ) -> None:
        self.n = len(docs)
        self.docs = list(docs)
        self.types = list(types)
        self.metas = metas
        self._postings: dict[str, dict[Any, np.ndarray]] = {}
        self._shown: dict[str, dict[Any, Any]] = {}  # normalised value -> as first seen
        self._numbers: dict[str, np.ndarray] = {}
        self._prefixes: dict[str, np.ndarray] = {}

    def _field(self, key: str) -> list[Any]:
        if key == "type":
            return list(self.types)
        if key == "doc":
            return list(self.docs)
        return [m.get(key) for m in self.metas]

    def postings(self, key: str) -> dict[Any, np.ndarray]:
        """Normalised value -> the rows that have it (list-valued fields under each value)."""
        if key not in self._postings:
            found: dict[Any, list[int]] = {}
            shown: dict[Any, Any] = {}
            for row, value in enumerate(self._field(key)):
                values = value if isinstance(value, list | tuple | set) else [value]
                for v in values:
                    if v is not None:
                        key_v = normal(v)
                        found.setdefault(key_v, []).append(row)
                        shown.setdefault(key_v, v)
            self._postings[key] = {v: np.asarray(r, dtype=np.int64) for v, r in found.items()}
            self._shown[key] = shown
        return self._postings[key]

    def counts(self, key: str, mask: np.ndarray | None = None) -> dict[Any, int]:
        """Facet counts: each value of ``key`` (as first seen) -> how many rows of ``mask``
        (all rows if None) have it, most frequent first; values counted 0 are left out."""
        postings = self.postings(key)
        shown = self._shown[key]
        found = {
            shown[v]: int(len(rows) if mask is None else np.count_nonzero(mask[rows]))
            for v, rows in postings.items()
        }
        return dict(sorted(((v, n) for v, n in found.items() if n), key=lambda kv: -kv[1]))

    def numbers(self, key: str) -> np.ndarray:
        """The field as floats (NaN where missing or not a number)."""
        if key not in self._numbers:
            self._numbers[key] = np.asarray([_number(v) for v in self._field(key)], dtype=float)
        return self._numbers[key]

    def _equal(self, key: str, values: Sequence[Any]) -> np.ndarray:
        mask = np.zeros(self.n, dtype=bool)
        postings = self.postings(key)
        for value in values:
            rows = postings.get(normal(value))
            if rows is not None:
                mask[rows] = True
        return mask

    def _prefix(self, prefixes: Sequence[str]) -> np.ndarray:
        mask = np.zeros(self.n, dtype=bool)
        for prefix in prefixes:
            if not isinstance(prefix, str):
                raise FilterError(
                    f"takes a string (or a list of them), got {prefix!r}", "path_prefix"
                )
            if prefix not in self._prefixes:
                if len(self._prefixes) > 256:
                    self._prefixes.clear()
                self._prefixes[prefix] = np.fromiter(
                    (d.startswith(prefix) for d in self.docs), dtype=bool, count=self.n
                )
            mask |= self._prefixes[prefix]
        return mask

    def _ops(self, key: str, ops: Mapping[str, Any]) -> np.ndarray:
        mask = np.ones(self.n, dtype=bool)
        for op, value in ops.items():
            if op not in _OPS:
                raise FilterError(f"unknown operator {op!r} (use one of {sorted(_OPS)})", key)
            if op in ("in", "eq"):
                values = value if isinstance(value, list | tuple | set) else [value]
                mask &= self._equal(key, list(values))
            elif op == "ne":
                mask &= ~self._equal(key, [value])
            else:
                bound = _number(value)
                if math.isnan(bound):
                    raise FilterError(f"{op!r} takes a number or a date, got {value!r}", key)
                column = self.numbers(key)
                with np.errstate(invalid="ignore"):
                    if op == "gt":
                        mask &= column > bound
                    elif op == "gte":
                        mask &= column >= bound
                    elif op == "lt":
                        mask &= column < bound
                    else:
                        mask &= column <= bound
        return mask

    def mask(self, filters: Mapping[str, Any] | None) -> np.ndarray | None:
        """The rows every filter holds for, or None when there is no filter."""
        if not filters:
            return None
        if not isinstance(filters, Mapping):
            raise FilterError(f"filters must be a mapping, got {type(filters).__name__}", "*")
        mask = np.ones(self.n, dtype=bool)
        for key, value in filters.items():
            if key == "path_prefix":
                mask &= self._prefix([value] if isinstance(value, str) else list(value))
            elif isinstance(value, Mapping):
                mask &= self._ops(key, value)
            elif isinstance(value, list | tuple | set):
                mask &= self._equal(key, list(value))
            else:
                mask &= self._equal(key, [value])
        return mask
