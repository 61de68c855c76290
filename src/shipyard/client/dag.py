"""The nesting structure of a run's graph, for views that draw the DAG (CLI, UI)."""

from __future__ import annotations

from typing import Any

_SPLITS = ("split", "foreach")


def nesting(graph: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """For each step, the kinds of the splits enclosing it, outermost first.

    ``()`` for steps on the main line; ``("foreach",)`` for the body of a foreach;
    ``("foreach", "split")`` for a static branch inside a foreach, and so on. A join closes
    the innermost split. Steps are visited in ``graph["order"]`` (topological).
    """
    steps: dict[str, Any] = graph.get("steps", {})
    order = [str(n) for n in graph.get("order") or steps]
    result: dict[str, tuple[str, ...]] = {}
    for name in order:
        result.setdefault(name, ())
        node = steps.get(name, {})
        here = result[name]
        kind = node.get("type")
        for child in node.get("next") or ():
            if kind in _SPLITS:
                nested = (*here, str(kind))
            elif steps.get(child, {}).get("type") == "join":
                nested = here[:-1]
            else:
                nested = here
            result.setdefault(str(child), nested)
    return result


__all__ = ["nesting"]
