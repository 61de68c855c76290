from __future__ import annotations

from typing import Any

from shipyard.client.dag import nesting


def _graph(steps: dict[str, tuple[str, list[str]]]) -> dict[str, Any]:
    return {
        "order": list(steps),
        "steps": {name: {"type": kind, "next": nxt} for name, (kind, nxt) in steps.items()},
    }


def test_linear() -> None:
    graph = _graph({"start": ("linear", ["a"]), "a": ("linear", ["end"]), "end": ("end", [])})
    assert nesting(graph) == {"start": (), "a": (), "end": ()}


def test_branches_inside_a_foreach() -> None:
    graph = _graph(
        {
            "start": ("foreach", ["body"]),
            "body": ("split", ["left", "right"]),
            "left": ("linear", ["inner_join"]),
            "right": ("linear", ["inner_join"]),
            "inner_join": ("join", ["outer_join"]),
            "outer_join": ("join", ["end"]),
            "end": ("end", []),
        }
    )
    assert nesting(graph) == {
        "start": (),
        "body": ("foreach",),
        "left": ("foreach", "split"),
        "right": ("foreach", "split"),
        "inner_join": ("foreach",),
        "outer_join": (),
        "end": (),
    }
