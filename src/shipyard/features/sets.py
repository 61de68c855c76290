"""``FeatureSet``: the feature functions a model was trained on, computed the same way for
one request (``row``: plain Python, no pandas) and for a training set (``frame``).

>>> features = FeatureSet("ranker-features", [title_length, mean_rating],
...                       lookups={"profile": Lookup("profile_id", timedelta(hours=6))})
>>> features.row({"title": "Heat", "profile_id": "p1"},
...              lookups={"profile": {"mean_rating": 3.5}})          # doctest: +SKIP
{'title_length': 4, 'mean_rating': 3.5}
>>> features.version                                                  # doctest: +SKIP
'9c1d0e7a55f3b2a1'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shipyard.features.definition import Facts, Feature, Lookups
from shipyard.features.errors import FeatureComputeError, FeatureDefinitionError
from shipyard.features.lookups import Lookup

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FeatureSet"]


class FeatureSet:
    """A named, versioned, ordered set of ``@feature`` functions and the lookups they read.

    ``version`` is a hash of the features' code and of the project code and constants it
    reads (see :mod:`shipyard.features.versioning`) and of the lookups' declarations.
    ``must_match=True``: a service whose set's version differs from its model's is refused
    at deploy (otherwise it is warned).
    """

    def __init__(
        self,
        name: str,
        features: Iterable[Feature],
        *,
        lookups: Mapping[str, Lookup] | None = None,
        must_match: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise FeatureDefinitionError(f"FeatureSet name must be a non-empty string: {name!r}")
        self.name = name
        self.features: tuple[Feature, ...] = tuple(features)
        for item in self.features:
            if not isinstance(item, Feature):
                raise FeatureDefinitionError(
                    f"FeatureSet {name!r}: {item!r} is not a @feature function; decorate it "
                    "with @feature"
                )
        seen: set[str] = set()
        for item in self.features:
            if item.name in seen:
                raise FeatureDefinitionError(
                    f"FeatureSet {name!r}: two features are named {item.name!r}; rename one "
                    "(@feature(name=...))"
                )
            seen.add(item.name)
        if not self.features:
            raise FeatureDefinitionError(f"FeatureSet {name!r} has no features")
        self.lookups: dict[str, Lookup] = dict(lookups or {})
        for lookup_name, lookup in self.lookups.items():
            if not isinstance(lookup, Lookup):
                raise FeatureDefinitionError(
                    f"FeatureSet {name!r}: lookups[{lookup_name!r}] is {lookup!r}, not a Lookup"
                )
        self.must_match = bool(must_match)
        self.names: tuple[str, ...] = tuple(f.name for f in self.features)
        self._defaults = {n: lk.default for n, lk in self.lookups.items()}
        self._version: str | None = None
        self.row = _compile_row(self)  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"<FeatureSet {self.name} {len(self.features)} features>"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("row", None)  # compiled for this process: made again when loaded
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.row = _compile_row(self)  # type: ignore[method-assign]

    # --- identity ------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """16 hex characters; computed once, on first use (it reads the source)."""
        if self._version is None:
            from shipyard.features.versioning import version_of

            entries: list[tuple[str, Any]] = []
            for item in self.features:
                entries.append((f"feature:{item.name}:{item.takes_lookups}", item.fn))
                if item.vectorized is not None:
                    entries.append((f"vectorized:{item.name}", item.vectorized))
            for lookup_name in sorted(self.lookups):
                entries.append((f"lookup:{lookup_name}", self.lookups[lookup_name].describe()))
            self._version = version_of(entries)
        return self._version

    @property
    def dtypes(self) -> dict[str, str]:
        """Feature name -> dtype (float, int, bool, str or any), in order."""
        return {f.name: f.dtype for f in self.features}

    def ref(self) -> dict[str, str]:
        """``{"name", "version"}``: what a model's input signature records."""
        return {"name": self.name, "version": self.version}

    # --- one row (a request) -------------------------------------------------------------
    def row(self, facts: Facts, lookups: Lookups | None = None) -> dict[str, Any]:
        """The features of one row, by name in order. Plain Python: no pandas, no copies.

        ``lookups``: lookup name -> the aggregate's fields (None or absent: the lookup's
        ``default``). Raises :class:`FeatureComputeError` naming the feature that raised.
        (Each FeatureSet replaces this method with a function compiled for its features -
        see :func:`_compile_row` - so a row costs what calling them by hand costs.)
        """
        return self.row(facts, lookups)  # pragma: no cover - replaced in __init__

    def vector(self, facts: Facts, lookups: Lookups | None = None) -> list[Any]:
        """:meth:`row`'s values in order: what ``model.predict([...])`` takes."""
        return list(self.row(facts, lookups).values())

    def _filled(self, lookups: Lookups | None) -> dict[str, Mapping[str, Any] | None]:
        given = lookups or {}
        if not isinstance(given, Mapping):
            raise FeatureComputeError(
                f"FeatureSet {self.name!r}: lookups must be a mapping of lookup name -> its "
                f"fields, got {type(given).__name__}",
                feature="",
            )
        filled: dict[str, Mapping[str, Any] | None] = {}
        for lookup_name, default in self._defaults.items():
            value = given.get(lookup_name)
            filled[lookup_name] = default if value is None else value
        unknown = sorted(str(k) for k in given if k not in filled)
        if unknown:
            raise FeatureComputeError(
                f"FeatureSet {self.name!r} declares no lookup {', '.join(map(repr, unknown))}; "
                f"its lookups: {', '.join(sorted(self._defaults)) or 'none'}",
                feature="",
            )
        return filled

    def _bad_facts(self, facts: object) -> FeatureComputeError:
        return FeatureComputeError(
            f"FeatureSet {self.name!r}: facts must be a mapping of field -> value, "
            f"got {type(facts).__name__}",
            feature="",
        )

    def _failed(self, exc: BaseException) -> FeatureComputeError:
        """The error naming the feature whose function raised ``exc``."""
        codes = {f.fn.__code__: f.name for f in self.features}
        name = ""
        tb = exc.__traceback__
        while tb is not None:
            found = codes.get(tb.tb_frame.f_code)
            if found is not None:
                name = found
                break
            tb = tb.tb_next
        return FeatureComputeError(
            f"feature {name!r} of {self.name!r} raised {type(exc).__name__}: {exc}",
            feature=name,
        )

    # --- many rows (a training set, a replay) --------------------------------------------
    def frame(
        self,
        facts: pd.DataFrame | Sequence[Facts],
        *,
        history: Mapping[str, pd.DataFrame] | None = None,
        lookups: Mapping[str, pd.DataFrame] | None = None,
        ts: str = "ts",
        vectorized: bool = True,
    ) -> pd.DataFrame:
        """The features of many rows, one column per feature, indexed like ``facts``.

        ``history``: lookup name -> its values over time (columns: the lookup's key,
        ``as_of``, its fields); each row is joined to the value it was entitled to at its
        time ``facts[ts]`` (a point-in-time DuckDB ``ASOF JOIN``; see
        :mod:`shipyard.features.lookups` for the staleness rule). ``lookups``: lookup name
        -> a frame of its fields aligned with ``facts`` row for row, when they are known
        already (a serving log's). A feature with a vectorised form is computed with it
        (``vectorized=False``: every feature through its row function, to compare).
        """
        from shipyard.features.frames import compute_frame

        return compute_frame(
            self, facts, history=history, lookups=lookups, ts=ts, vectorized=vectorized
        )


def _compile_row(fs: FeatureSet) -> Any:
    """A function computing ``fs``'s row as a user would by hand - one dict display calling
    each feature function - plus the checks ``row`` promises: facts are a mapping, missing
    lookups get their defaults, a raising feature is named."""
    names: dict[str, Any] = {
        "Mapping": Mapping,
        "_bad_facts": fs._bad_facts,
        "_fill": fs._filled,
        "_failed": fs._failed,
        "_no_lookups": {},
    }
    calls = []
    for i, item in enumerate(fs.features):
        names[f"_f{i}"] = item.fn
        args = "facts, lookups" if item.takes_lookups else "facts"
        calls.append(f"{item.name!r}: _f{i}({args})")
    lines = [
        "def row(facts, lookups=None):",
        "    if type(facts) is not dict and not isinstance(facts, Mapping):",
        "        raise _bad_facts(facts)",
    ]
    if fs.lookups:
        # the fast path: every declared lookup given (extra names are not read by any
        # feature; _fill, which names them as unknown, runs only when one is missing)
        present = " or ".join(f"lookups.get({n!r}) is None" for n in fs.lookups)
        lines += [
            "    if lookups is None:",
            "        lookups = _fill(None)",
            f"    elif {present}:",
            "        lookups = _fill(lookups)",
        ]
    else:
        lines += [
            "    if lookups is None:",
            "        lookups = _no_lookups",
            "    elif lookups:",
            "        lookups = _fill(lookups)",
        ]
    lines += [
        "    try:",
        "        return {" + ", ".join(calls) + "}",
        "    except Exception as exc:",
        "        raise _failed(exc) from exc",
    ]
    code = compile("\n".join(lines), f"<FeatureSet {fs.name} row>", "exec")
    exec(code, names)
    row = names["row"]
    row.__doc__ = FeatureSet.row.__doc__
    return row
