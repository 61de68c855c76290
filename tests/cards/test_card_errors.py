"""One exception root for cards: a card that is not there is one ``CardNotFound`` (a
``CardError`` and a ``KeyError``), whether the step has no such card or its blob is gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.cards import CardCollector, CardError, CardMissing, CardNotFound
from shipyard.cards.client import Card
from shipyard.store.blobs import open_blob_store


def test_a_card_the_step_does_not_have_is_not_found() -> None:
    collector = CardCollector(("F", 1, 2, 0))
    with pytest.raises(CardNotFound) as raised:
        collector["metrics"]
    assert isinstance(raised.value, CardError) and isinstance(raised.value, KeyError)
    assert str(raised.value).startswith("current.card['metrics']: this step has no card")


def test_a_card_whose_blob_is_gone_is_not_found_either(tmp_path: Path) -> None:
    card = Card("F/1/start/2", id="default", type="default", title="t", key="ab" * 32, size=1)
    with pytest.raises(CardNotFound, match="missing from the blob store") as raised:
        card.get(open_blob_store(f"file://{tmp_path}"))
    assert CardMissing is CardNotFound and isinstance(raised.value, LookupError)
