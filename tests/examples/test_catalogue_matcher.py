"""The catalogue's typo-tolerant title matcher (examples/catalogue_search/matcher.py): per-word
typo budgets by length (Meilisearch's bounds), the last word as a prefix, whole titles within
typos, and the fuzzy ranker scoring only the candidates those give — checked against
rapidfuzz's full scan over the real catalogue. No model: runs anywhere, in a few seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "catalogue_search"
sys.path.insert(0, str(EXAMPLE))

import matcher  # noqa: E402

TITLES = [
    "The Godfather",
    "The Godfather: Part II",
    "Godfather's Daughter",
    "Prince and the Showgirl, The",
    "Showgirls",
    "Casablanca",
    "Lawrence of Arabia",
    "Love",
    "Love Actually",
    "Clove Hitch",
]


@pytest.fixture(scope="module")
def small() -> matcher.TitleMatcher:
    votes = np.arange(len(TITLES), 0, -1)  # earlier titles more voted
    return matcher.TitleMatcher([matcher.fuzzy_text(t) for t in TITLES], votes)


def titles(m: matcher.TitleMatcher, mask: np.ndarray) -> set[str]:
    return {TITLES[i] for i in np.flatnonzero(mask)}


def test_typo_budgets_follow_the_word_length() -> None:
    assert [matcher.typo_budget("x" * n) for n in (1, 4, 5, 8, 9, 14)] == [0, 0, 1, 1, 2, 2]


def test_every_keyword_must_match_within_its_budget(small) -> None:
    # 'godfahter' (9 letters, one swap + nothing else: OSA 1) and 'casablnca' (one deletion)
    assert titles(small, small.word_matches("godfahter part")) == {"The Godfather: Part II"}
    assert titles(small, small.word_matches("casablnca ")) == {"Casablanca"}
    # a 4-letter word gets no typo: 'lobe' is not 'love'; 'love' finds only titles with it
    assert titles(small, small.word_matches("lobe ")) == set()
    assert titles(small, small.word_matches("love ")) == {"Love", "Love Actually"}
    # two typos in a 5-8 letter word are too many
    assert titles(small, small.word_matches("shwoglr ")) == set()
    # stop words alone match nothing (they are no keywords)
    assert titles(small, small.word_matches("and the")) == set()


def test_the_last_keyword_is_also_a_prefix_while_typing(small) -> None:
    assert titles(small, small.word_matches("lawrence of arab")) == {"Lawrence of Arabia"}
    assert titles(small, small.word_matches("lawrence of arab ")) == set()  # a finished word


def test_whole_titles_within_typos_match_and_rank_first(small) -> None:
    scores, matched = small.match("Prince and teh Shwogirl")
    assert "Prince and the Showgirl, The" in titles(small, matched)
    assert TITLES[int(np.argmax(scores))] == "Prince and the Showgirl, The"
    scores, matched = small.match("godfathr")
    assert titles(small, matched) >= {"The Godfather"}
    assert scores[TITLES.index("Clove Hitch")] < scores[TITLES.index("The Godfather")]


def test_a_mask_keeps_scores_and_matches_inside_it(small) -> None:
    mask = np.zeros(len(TITLES), dtype=bool)
    mask[[TITLES.index("Love Actually"), TITLES.index("Casablanca")]] = True
    scores, matched = small.match("love", mask)
    assert titles(small, matched) == {"Love Actually"}
    assert set(np.flatnonzero(scores > 0)) <= set(np.flatnonzero(mask))


def test_on_the_whole_catalogue_misspelled_and_partial_titles_rank_in_the_top_10() -> None:
    """Over all 58,788 titles, the ranker (WRatio over its candidates only) puts the film
    in its top 10 and counts it as matched. (A full WRatio scan is no better: its best for
    'godfather part' is the film 'Go', a partial match of two letters.)"""
    import filmdata

    films = filmdata.load_catalogue()
    names = [matcher.fuzzy_text(f["title"]) for f in films]
    votes = np.asarray([f["votes"] for f in films])
    m = matcher.TitleMatcher(names, votes)
    for query, title in (
        ("Prince and the Shwogirl", "Prince and the Showgirl, The"),
        ("Lawrence of Arabai", "Lawrence of Arabia"),
        ("godfather part", "Godfather: Part II, The"),
        ("casablnca", "Casablanca"),
    ):
        scores, matched = m.match(query)
        top = [films[i]["title"] for i in np.lexsort((-votes, -scores))[:10]]
        assert title in top, (query, top)
        assert any(matched[i] for i, f in enumerate(films) if f["title"] == title), query
