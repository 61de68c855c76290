"""``current.card``: where a running step appends components to its cards.

``current.card.append(...)`` goes to the step's card without an ``id`` (or to its only card);
``current.card["metrics"].append(...)`` to the card declared with ``@card(id="metrics")``.
Components are rendered when the task ends, after its artifacts are stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from shipyard.cards.components import Component
from shipyard.cards.errors import CardNotFound


def _check(component: object) -> Component:
    if not isinstance(component, Component):
        raise TypeError(
            f"current.card takes card components (Markdown, Table, Image, LineChart, BarChart, "
            f"Artifact), got {type(component).__name__}: wrap text in Markdown(...)"
        )
    return component


class CardHandle:
    """One card's list of components."""

    def __init__(self, card_id: str, card_type: str, *, explicit_id: bool) -> None:
        self.id = card_id
        self.type = card_type
        self.explicit_id = explicit_id
        self.components: list[Component] = []

    def append(self, component: Component) -> None:
        """Add a component at the end of the card."""
        self.components.append(_check(component))

    def extend(self, components: Iterable[Component]) -> None:
        """Add several components at the end of the card."""
        self.components.extend(_check(c) for c in components)

    def clear(self) -> None:
        """Remove every component appended so far."""
        self.components.clear()

    def __len__(self) -> int:
        return len(self.components)

    def __iter__(self) -> Iterator[Component]:
        return iter(self.components)

    def __repr__(self) -> str:
        return f"<card {self.id!r} ({self.type}): {len(self.components)} components>"


class CardCollector:
    """``current.card`` while a step with ``@card`` runs."""

    def __init__(self, owner: tuple[object, ...]) -> None:
        self.owner = owner  # (flow, run, task, attempt): a new task gets a new collector
        self.started = time.time()  # when the first @card hook ran: the task's start
        self._cards: dict[str, CardHandle] = {}

    def _add(self, card_id: str, card_type: str, *, explicit_id: bool) -> CardHandle:
        handle = self._cards.get(card_id)
        if handle is None:
            handle = self._cards[card_id] = CardHandle(card_id, card_type, explicit_id=explicit_id)
        return handle

    @property
    def ids(self) -> list[str]:
        """The ids of the step's cards."""
        return list(self._cards)

    def _target(self) -> CardHandle:
        unnamed = [h for h in self._cards.values() if not h.explicit_id]
        if len(unnamed) == 1:
            return unnamed[0]
        if len(self._cards) == 1:
            return next(iter(self._cards.values()))
        raise CardNotFound(
            f"this step has several cards ({', '.join(map(repr, self._cards))}): "
            'say which one, e.g. current.card["<id>"].append(...)'
        )

    def append(self, component: Component) -> None:
        """Add a component to the step's card (the one without an id)."""
        self._target().append(component)

    def extend(self, components: Iterable[Component]) -> None:
        """Add several components to the step's card (the one without an id)."""
        self._target().extend(components)

    def clear(self) -> None:
        """Remove the components appended so far to the step's card."""
        self._target().clear()

    def refresh(self) -> None:
        """Accepted for Metaflow compatibility; cards are rendered once, when the task ends."""

    @property
    def components(self) -> list[Component]:
        """The components of the step's card (the one without an id)."""
        return self._target().components

    def __getitem__(self, card_id: str) -> CardHandle:
        handle = self._cards.get(card_id)
        if handle is None:
            have = ", ".join(map(repr, self._cards)) or "none"
            raise CardNotFound(
                f"current.card[{card_id!r}]: this step has no card with that id (it has {have}); "
                f'declare it with @card(id="{card_id}") on the step'
            )
        return handle

    def __contains__(self, card_id: object) -> bool:
        return card_id in self._cards

    def __repr__(self) -> str:
        return f"<current.card: {', '.join(map(repr, self._cards.values()))}>"


__all__ = ["CardCollector", "CardHandle", "CardNotFound"]
