"""Reading cards back: :func:`get_cards` lists a task's cards; :meth:`Card.get` reads one's HTML.

>>> from shipyard.cards import get_cards
>>> [c.id for c in get_cards("TrainFlow/12/train/34")]                 # doctest: +SKIP
['default']
>>> html = get_cards("TrainFlow/12/train/34", id="default")[0].get()   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.cards.errors import CardMissing
from shipyard.client import Task
from shipyard.store.blobs import BlobNotFound, BlobStore
from shipyard.store.context import default_stores


@dataclass(frozen=True)
class Card:
    """One rendered card of a task; its HTML is read from the blob store by :meth:`get`."""

    pathspec: str  # the task's
    id: str
    type: str
    title: str
    key: str
    size: int

    def get(self, blobs: BlobStore | None = None) -> str:
        """The card's HTML document."""
        store = blobs if blobs is not None else default_stores().blobs
        try:
            return bytes(store.get(self.key)).decode("utf-8")
        except BlobNotFound:
            raise CardMissing(
                f"card {self.id!r} of {self.pathspec} is missing from the blob store "
                f"(blob {self.key[:12]}…): was it garbage-collected?"
            ) from None

    @property
    def html(self) -> str:
        return self.get()


def cards_of(pathspec: str, result: dict[str, Any] | None) -> list[Card]:
    """The cards a task record's ``result`` describes."""
    found = []
    for item in (result or {}).get("cards") or []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            found.append(
                Card(
                    pathspec=pathspec,
                    id=str(item.get("id", "")),
                    type=str(item.get("type", "")),
                    title=str(item.get("title", "")),
                    key=item["key"],
                    size=int(item.get("size") or 0),
                )
            )
    return found


def get_cards(task: Task | str, *, id: str | None = None, type: str | None = None) -> list[Card]:
    """The cards of a task (a :class:`~shipyard.client.Task` or its pathspec), optionally
    only those with ``id`` or ``type``. Only successful tasks have cards."""
    task = task if isinstance(task, Task) else Task(task)
    return [
        c
        for c in cards_of(task.pathspec, task.record.result)
        if (id is None or c.id == id) and (type is None or c.type == type)
    ]


__all__ = ["Card", "CardMissing", "cards_of", "get_cards"]
