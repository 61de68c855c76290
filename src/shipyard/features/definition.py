"""``@feature``: one plain, typed Python function computing one feature of one row.

>>> @feature
... def title_length(facts: Facts) -> int:
...     return len(facts.get("title") or "")
>>> title_length.name, title_length.dtype
('title_length', 'int')
>>> title_length({"title": "Heat"})
4

A feature function takes the row's raw inputs (``facts``, a mapping) and, optionally, the
row's precomputed aggregates (``lookups``: lookup name -> mapping, see
:class:`shipyard.features.Lookup`). It stays callable as itself: a test, a notebook or a flow
calls it like any function. ``@feature(vectorized=many)`` adds a vectorised form used by
``FeatureSet.frame`` over many rows: ``many(facts: DataFrame, lookups: dict[str, DataFrame])``
returns one value per row (a Series, an array or a list), in the rows' order.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, overload

from shipyard.features.errors import FeatureDefinitionError

__all__ = ["Facts", "Feature", "Lookups", "feature"]

#: a row's raw inputs: field name -> value
Facts: TypeAlias = Mapping[str, Any]
#: a row's precomputed aggregates: lookup name -> its fields (None: nothing found)
Lookups: TypeAlias = Mapping[str, Mapping[str, Any] | None]

_DTYPES: dict[Any, str] = {float: "float", int: "int", bool: "bool", str: "str"}


class Feature:
    """A ``@feature`` function: its ``name``, ``dtype`` (from the return annotation: float,
    int, bool, str or any), whether it takes ``lookups``, and its optional ``vectorized``
    form. Calling it calls the function."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        vectorized: Callable[..., Any] | None = None,
    ) -> None:
        if not inspect.isfunction(fn):
            raise FeatureDefinitionError(
                f"@feature decorates a plain function, got {fn!r}; write `def name(facts): ...`"
            )
        self.fn = fn
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__
        self.name = name or fn.__name__
        if not self.name.isidentifier():
            raise FeatureDefinitionError(
                f"feature name {self.name!r} ({_where(fn)}) must be an identifier"
            )
        self.takes_lookups = _arity(fn) == 2
        self.dtype = _dtype(fn)
        if vectorized is not None and not callable(vectorized):
            raise FeatureDefinitionError(
                f"@feature(vectorized=...) of {self.name!r} ({_where(fn)}) must be a function, "
                f"got {vectorized!r}"
            )
        self.vectorized = vectorized

    def __call__(self, facts: Facts, lookups: Lookups | None = None) -> Any:
        if self.takes_lookups:
            return self.fn(facts, lookups or {})
        return self.fn(facts)

    def __repr__(self) -> str:
        return f"<feature {self.name}: {self.dtype}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by reference, as a function is: the module's attribute of that name
        (the ``@feature`` replaced the function there, so pickling ``fn`` itself fails)."""
        return (_find_feature, (self.fn.__module__, self.fn.__qualname__))


def _find_feature(module: str, qualname: str) -> Feature:
    import importlib

    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not isinstance(found, Feature):
        raise FeatureDefinitionError(f"{module}.{qualname} is not a @feature any more")
    return found


@overload
def feature(fn: Callable[..., Any], /) -> Feature: ...


@overload
def feature(
    *, name: str | None = None, vectorized: Callable[..., Any] | None = None
) -> Callable[[Callable[..., Any]], Feature]: ...


def feature(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    vectorized: Callable[..., Any] | None = None,
) -> Feature | Callable[[Callable[..., Any]], Feature]:
    """Mark a function ``(facts) -> value`` or ``(facts, lookups) -> value`` as a feature.

    ``name``: the feature's name (default: the function's); ``vectorized``: a function over
    many rows at once (see the module doc), used by ``FeatureSet.frame``.
    """
    if fn is not None:
        return Feature(fn, name=name, vectorized=vectorized)

    def mark(function: Callable[..., Any]) -> Feature:
        return Feature(function, name=name, vectorized=vectorized)

    return mark


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return repr(fn)
    return f"{code.co_filename}:{code.co_firstlineno}"


def _arity(fn: Callable[..., Any]) -> int:
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(params) not in (1, 2):
        raise FeatureDefinitionError(
            f"feature function {fn.__name__}() ({_where(fn)}) takes {len(params)} required "
            "parameters; a feature takes (facts) or (facts, lookups)"
        )
    return len(params)


def _dtype(fn: Callable[..., Any]) -> str:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation that does not resolve: the type says nothing
        return "any"
    returned = hints.get("return")
    if returned is None:
        return "any"
    args = typing.get_args(returned)
    if args and type(None) in args:  # Optional[float]: the value's type
        rest = [a for a in args if a is not type(None)]
        returned = rest[0] if len(rest) == 1 else Any
    return _DTYPES.get(returned, "any")
