"""Cards: per-task HTML reports.

``@card`` on a step renders a report when the task succeeds: by default the task's artifacts,
timings, parameters and place in the DAG; or the components the step appends to
``current.card`` (Markdown, Table, Image, LineChart, BarChart, Artifact). A card is one
self-contained HTML file (no script, nothing fetched), shown by the UI and by
``shipyard cards get``.

>>> from shipyard import FlowSpec, step, current
>>> from shipyard.cards import card, Markdown, Table
>>> class Report(FlowSpec):
...     @card(type="blank")
...     @step
...     def start(self):
...         current.card.append(Markdown("# Scores"))
...         current.card.append(Table([[1, 0.9]], headers=["fold", "auc"]))
...         self.next(self.end)
...     @step
...     def end(self): ...

Importing this package is cheap: the client part (:func:`get_cards`) loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shipyard.cards.charts import BarChart, LineChart
from shipyard.cards.collector import CardCollector, CardHandle, CardNotFound
from shipyard.cards.components import Artifact, Component, Image, Markdown, Table
from shipyard.cards.decorator import CardDecorator, card

if TYPE_CHECKING:
    from shipyard.cards.client import Card as Card
    from shipyard.cards.client import CardMissing as CardMissing
    from shipyard.cards.client import get_cards as get_cards

_LAZY = {"Card", "CardMissing", "get_cards"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("shipyard.cards.client"), name)
    raise AttributeError(f"module 'shipyard.cards' has no attribute {name!r}")


__all__ = [
    "Artifact",
    "BarChart",
    "Card",
    "CardCollector",
    "CardDecorator",
    "CardHandle",
    "CardMissing",
    "CardNotFound",
    "Component",
    "Image",
    "LineChart",
    "Markdown",
    "Table",
    "card",
    "get_cards",
]
