"""The schemas of one OpenAPI document, read by the docs page (examples) and by the service
client (annotations): local ``$ref``s into ``components.schemas``, followed once.

>>> schemas = Components({"Pair": {"type": "object", "title": "Pair"}})
>>> schemas.resolve({"$ref": "#/components/schemas/Pair", "description": "one pair"})
{'type': 'object', 'title': 'Pair', 'description': 'one pair'}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["REF_PREFIX", "Components"]

#: where a local ``$ref`` points: ``#/components/schemas/<name>``
REF_PREFIX = "#/components/schemas/"


class Components:
    """``components``: a document's ``components.schemas``."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components

    def ref_name(self, schema: Any) -> str | None:
        """The component name a ``{"$ref": ...}`` schema points at, else None."""
        if isinstance(schema, Mapping):
            ref = schema.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF_PREFIX):
                return ref[len(REF_PREFIX) :]
        return None

    def resolve(self, schema: Any) -> dict[str, Any]:
        """``schema`` with its ``$ref`` followed (once; other keywords beside the ``$ref``,
        such as a ``description``, override the target's). An unknown ref resolves to
        ``{}`` (anything), as a validator that cannot follow it would accept anything."""
        if not isinstance(schema, Mapping):
            return {}
        name = self.ref_name(schema)
        if name is None:
            return dict(schema)
        target = self.components.get(name)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return {**(target if isinstance(target, Mapping) else {}), **rest}
