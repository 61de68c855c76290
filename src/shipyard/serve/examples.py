"""Example values from JSON Schemas: what the docs page shows and prefills its forms with.

The schemas are the ones in a service's OpenAPI document (:func:`shipyard.serve.schemas.
build_openapi`): local ``$ref``s into ``components.schemas``, which may be recursive (a
``Node`` whose ``children`` are Nodes). An example is taken, in this order, from the
schema's ``examples``, ``example``, ``default``, ``const`` or ``enum``, else made from its
type and constraints: the smallest valid instance, with the optional properties that have a
default shown at their default. A cycle is never followed (a recursive field falls back to
its default, an empty list or ``null``); a schema that cannot be satisfied without following
one has no example (:class:`NoExample`).

>>> reader = SchemaReader({"Pair": {"type": "object", "required": ["user"],
...     "properties": {"user": {"type": "string"}, "weight": {"type": "number", "default": 1.0}}}})
>>> reader.example({"type": "array", "items": {"$ref": "#/components/schemas/Pair"}})
[{'user': 'string', 'weight': 1.0}]
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from shipyard._openapi import REF_PREFIX, Components

__all__ = ["REF_PREFIX", "NoExample", "SchemaReader"]


#: a value for a string of each ``format`` pydantic writes
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "duration": "PT1S",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "binary": "",
    "base64": "",
    "path": "file.txt",
}


class NoExample(Exception):
    """No valid instance could be made without following a cycle (or from a ``not``)."""


class SchemaReader(Components):
    """Reads the schemas of one OpenAPI document: resolves ``$ref``s, makes examples.

    ``components`` is the document's ``components.schemas``.
    """

    def example(self, schema: Any) -> Any:
        """A valid instance of ``schema``, or :class:`NoExample`."""
        return self._example(schema, ())

    def _example(self, schema: Any, seen: tuple[str, ...]) -> Any:
        if schema is True or not isinstance(schema, Mapping):
            return None
        name = self.ref_name(schema)
        if name is not None:
            if name in seen:
                raise NoExample(f"{name} contains itself")
            seen = (*seen, name)
        node = self.resolve(schema)
        for given in _given(node):
            return given
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                return self._first(node[key], seen)
        if isinstance(node.get("allOf"), list):
            merged: dict[str, Any] = {}
            for part in node["allOf"]:
                merged.update(self.resolve(part))
            return self._example(merged, seen)
        kind = node.get("type")
        if isinstance(kind, list):  # ["string", "null"]: the first that is not null
            kinds = [k for k in kind if k != "null"] or ["null"]
            kind = kinds[0]
        if kind is None:
            kind = _implied_type(node)
        return self._typed(kind, node, seen)

    def _first(self, branches: list[Any], seen: tuple[str, ...]) -> Any:
        """The example of the first branch that has one, null ones last."""
        ordered = sorted(branches, key=lambda b: self.resolve(b).get("type") == "null")
        problem: NoExample | None = None
        for branch in ordered:
            try:
                return self._example(branch, seen)
            except NoExample as exc:
                problem = exc
        raise problem or NoExample("no branch of anyOf/oneOf")

    def _typed(self, kind: Any, node: dict[str, Any], seen: tuple[str, ...]) -> Any:
        if kind == "object":
            return self._object(node, seen)
        if kind == "array":
            return self._array(node, seen)
        if kind == "string":
            return _string(node)
        if kind == "integer":
            return int(_number(node, integer=True))
        if kind == "number":
            return float(_number(node, integer=False))
        if kind == "boolean":
            return True
        return None  # "null", or no type at all (anything)

    def _object(self, node: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
        properties = node.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = node.get("required")
        required = set(required) if isinstance(required, list) else set()
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required:
                out[name] = self._example(sub, seen)
            elif isinstance(sub, Mapping) and "default" in sub:
                out[name] = sub["default"]
        extra = node.get("additionalProperties")
        if not properties and isinstance(extra, Mapping) and extra:
            # "1": a valid key whether the keys are strings or integers (dict[int, str]
            # says nothing of its keys), unless the schema names its keys
            names = node.get("propertyNames")
            try:
                key = str(self._example(names, seen)) if isinstance(names, Mapping) else "1"
                out[key] = self._example(extra, seen)
            except NoExample:
                pass  # an empty mapping is valid
        return out

    def _array(self, node: dict[str, Any], seen: tuple[str, ...]) -> list[Any]:
        prefix = node.get("prefixItems")
        if isinstance(prefix, list):  # a tuple
            return [self._example(item, seen) for item in prefix]
        least = node.get("minItems", 0)
        least = least if isinstance(least, int) and least > 0 else 0
        most = node.get("maxItems")
        count = max(least, 0 if most == 0 else 1)
        try:
            item = self._example(node.get("items", {}), seen)
        except NoExample:
            if least:
                raise
            return []  # a recursive list: empty is valid
        return [item] * count


def _given(node: Mapping[str, Any]) -> list[Any]:
    """The example the schema gives itself, as a one-item list (or none)."""
    examples = node.get("examples")
    if isinstance(examples, list) and examples:
        return [examples[0]]
    for key in ("example", "default", "const"):
        if key in node:
            return [node[key]]
    enum = node.get("enum")
    if isinstance(enum, list) and enum:
        return [enum[0]]
    return []


def _implied_type(node: Mapping[str, Any]) -> str | None:
    if "properties" in node or "additionalProperties" in node:
        return "object"
    if "items" in node or "prefixItems" in node:
        return "array"
    return None


def _string(node: Mapping[str, Any]) -> str:
    fmt = node.get("format")
    value = _FORMATS.get(fmt, "string") if isinstance(fmt, str) else "string"
    least = node.get("minLength")
    most = node.get("maxLength")
    candidates = [value]
    if isinstance(least, int) and len(value) < least:
        candidates = [value + "x" * (least - len(value))]
    if isinstance(most, int) and len(candidates[0]) > most:
        candidates = [candidates[0][:most]]
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        size = max(least if isinstance(least, int) else 1, 1)
        candidates += [c * size for c in ("a", "A", "0", "a0")] + ["string", ""]
        for candidate in candidates:
            try:
                if re.search(pattern, candidate):
                    return candidate
            except re.error:
                break
    return candidates[0]


def _number(node: Mapping[str, Any], *, integer: bool) -> float:
    """0, or else a value inside the bounds (on a ``multipleOf`` when one is given)."""
    low, low_open = _bound(node, "minimum", "exclusiveMinimum")
    high, high_open = _bound(node, "maximum", "exclusiveMaximum")
    value: float = 0
    if integer:
        if low is not None:
            value = max(value, math.floor(low) + 1 if low_open else math.ceil(low))
        if high is not None:
            value = min(value, math.ceil(high) - 1 if high_open else math.floor(high))
    else:
        middle = (low + high) / 2 if low is not None and high is not None else None
        if low is not None and (value < low or (low_open and value <= low)):
            value = middle if middle is not None else low + 1
        if high is not None and (value > high or (high_open and value >= high)):
            value = middle if middle is not None else high - 1
    step = node.get("multipleOf")
    if isinstance(step, int | float) and step > 0:
        value = math.ceil(value / step) * step
    return value


def _bound(node: Mapping[str, Any], closed: str, open_: str) -> tuple[float | None, bool]:
    """A bound of a number and whether it is exclusive."""
    value = node.get(open_)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value, True
    value = node.get(closed)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value, False
    return None, False
