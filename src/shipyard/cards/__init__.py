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

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_exports
from shipyard.cards.charts import BarChart, LineChart
from shipyard.cards.collector import CardCollector, CardHandle
from shipyard.cards.components import Artifact, Component, Image, Markdown, Table
from shipyard.cards.decorator import CardDecorator, card
from shipyard.cards.errors import CardError, CardMissing, CardNotFound

if TYPE_CHECKING:
    from shipyard.cards.client import Card as Card
    from shipyard.cards.client import get_cards as get_cards

#: the client part, imported on first use (it opens the stores)
_LAZY = {"Card": "shipyard.cards.client", "get_cards": "shipyard.cards.client"}

__all__ = [
    "Artifact",
    "BarChart",
    "Card",
    "CardCollector",
    "CardDecorator",
    "CardError",
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

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
