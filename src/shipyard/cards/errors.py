"""Errors of the cards package.

CardError                root of everything below
└── CardNotFound         no such card: ``current.card["x"]`` names no card of the step, or
                         a card's HTML is gone from the blob store (garbage-collected, or
                         another store is configured); also a KeyError. ``CardMissing`` is
                         another name for it.

Bad arguments to a component (``Table``, ``Image``, a chart) raise TypeError or ValueError,
as Python's own functions do; a misused ``@card`` is a flow ``GraphError`` naming its line.
"""

from __future__ import annotations


class CardError(Exception):
    """Root of the cards package's errors."""


class CardNotFound(CardError, KeyError):
    """A card is not there: the running step has no card with that id, or a task's card is
    missing from the blob store. The message says which and what to do."""

    def __str__(self) -> str:  # KeyError's would quote the whole message
        return str(self.args[0]) if self.args else "card not found"


#: the name :meth:`Card.get <shipyard.cards.client.Card.get>` raised it under first
CardMissing = CardNotFound

__all__ = ["CardError", "CardMissing", "CardNotFound"]
