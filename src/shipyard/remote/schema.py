"""Python annotations and words from the JSON Schemas of a host's ``/openapi.json``.

A JSON type becomes the Python type its JSON decodes to: ``integer`` -> ``int``, ``number``
-> ``float``, ``array`` -> ``list[...]``, an ``enum`` -> ``Literal[...]``, ``anyOf`` -> a
union, a named object (``ranker.Pair``) -> ``dict[str, Any]`` (its fields are listed in the
docstring instead), anything else -> ``Any``.

>>> types = Types({"demo.Pair": {"type": "object", "title": "Pair", "properties": {}}})
>>> show(types.annotation({"type": "array", "items": {"$ref": "#/components/schemas/demo.Pair"}}))
'list[dict[str, Any]]'
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Mapping
from typing import Any, Literal

from shipyard._openapi import REF_PREFIX, Components

__all__ = ["Types", "properties_of", "required_of", "show"]

_SCALARS: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "null": type(None),
}


def show(annotation: Any) -> str:
    """An annotation as it reads in a signature: ``list[str]``, ``int | None``."""
    if annotation is type(None):
        return "None"
    return inspect.formatannotation(annotation).replace("typing.", "")


class Types(Components):
    """Reads the schemas of one OpenAPI document (``components``: its
    ``components.schemas``)."""

    def title(self, name: str) -> str:
        """A component's name as its service wrote it: ``Pair`` for ``ranker.Pair``."""
        target = self.components.get(name)
        title = target.get("title") if isinstance(target, Mapping) else None
        return str(title or name.split(".", 1)[-1])

    def annotation(self, schema: Any) -> Any:
        """The Python type of the JSON that ``schema`` describes."""
        node = self.resolve(schema)
        if self.ref_name(schema) is not None and (
            node.get("type") == "object" or "properties" in node
        ):
            return dict[str, Any]  # a named object: its fields are in the docstring
        branches = node.get("anyOf") or node.get("oneOf")
        if isinstance(branches, list) and branches:
            return _union([self.annotation(b) for b in branches])
        if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            return self.annotation(node["allOf"][0])
        if isinstance(node.get("enum"), list) and node["enum"] and _literal(node["enum"]):
            return Literal[tuple(node["enum"])]
        if "const" in node and _literal([node["const"]]):
            return Literal[node["const"]]
        kind = node.get("type")
        if isinstance(kind, list):
            return _union([self.annotation({**node, "type": k}) for k in kind])
        if kind in _SCALARS:
            return _SCALARS[kind]
        if kind == "array" or "items" in node:
            if isinstance(node.get("prefixItems"), list):
                return list[Any]
            items = node.get("items")
            return list[self.annotation(items)] if isinstance(items, Mapping) else list[Any]  # type: ignore[misc]
        if kind == "object" or "properties" in node or "additionalProperties" in node:
            extra = node.get("additionalProperties")
            if isinstance(extra, Mapping) and extra and not node.get("properties"):
                return dict[str, self.annotation(extra)]  # type: ignore[misc]
            return dict[str, Any]
        return Any

    def objects(self, schema: Any, found: dict[str, None] | None = None) -> list[str]:
        """The named objects ``schema`` uses, nested ones too, each once, in order."""
        found = {} if found is None else found
        name = self.ref_name(schema)
        if name is not None:
            if name in found:
                return list(found)
            node = self.resolve(schema)
            if node.get("type") == "object" or "properties" in node:
                found[name] = None
        else:
            node = self.resolve(schema)
        for sub in _subschemas(node):
            self.objects(sub, found)
        return list(found)

    def fields(self, name: str) -> list[str]:
        """The lines that describe the fields of component ``name`` (numpydoc style)."""
        node = self.resolve({"$ref": REF_PREFIX + name})
        properties = node.get("properties")
        if not isinstance(properties, Mapping):
            return []
        required = required_of(node)
        lines = []
        for field, sub in properties.items():
            lines.append(f"{field} : {self.describe(sub, required=field in required)}")
            about = self.resolve(sub).get("description")
            if about:
                lines.append(f"    {about}")
        return lines

    def describe(self, schema: Any, *, required: bool) -> str:
        """``str``, ``int, default 10``, ``list[Pair]`` — a field's type in words."""
        text = self.words(schema)
        if isinstance(schema, Mapping) and "default" in schema:
            text += f", default {schema['default']!r}"
        elif not required:
            text += ", optional"
        return text

    def words(self, schema: Any, seen: tuple[str, ...] = ()) -> str:
        """A type as a reader wants it: named objects by their name (``list[Pair]``)."""
        name = self.ref_name(schema)
        node = self.resolve(schema)
        if name is not None and (node.get("type") == "object" or "properties" in node):
            return self.title(name)
        branches = node.get("anyOf") or node.get("oneOf")
        if isinstance(branches, list) and branches:
            return " | ".join(dict.fromkeys(self.words(b) for b in branches))
        if node.get("type") == "array" and isinstance(node.get("items"), Mapping):
            return f"list[{self.words(node['items'])}]"
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping) and extra and not node.get("properties"):
            return f"dict[str, {self.words(extra)}]"
        return show(self.annotation(node))


def required_of(node: Mapping[str, Any]) -> list[str]:
    """The ``required`` list of an object schema (none: ``[]``)."""
    required = node.get("required")
    return [str(r) for r in required] if isinstance(required, list) else []


def properties_of(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``properties`` of an object schema (none: ``{}``)."""
    properties = node.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def _subschemas(node: Mapping[str, Any]) -> list[Any]:
    found: list[Any] = []
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), Mapping):
            found.append(node[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(node.get(key), list):
            found.extend(node[key])
    if isinstance(node.get("properties"), Mapping):
        found.extend(node["properties"].values())
    return found


def _literal(values: list[Any]) -> bool:
    return all(v is None or isinstance(v, str | int | bool) for v in values)


def _union(members: list[Any]) -> Any:
    unique = list(dict.fromkeys(members))
    if Any in unique:
        return Any
    if len(unique) == 1:
        return unique[0]
    return functools.reduce(operator.or_, unique)  # int | None, shown as written
