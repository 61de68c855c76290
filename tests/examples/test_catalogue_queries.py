"""examples/catalogue_search without a model: the catalogue (ggplot2movies joined with
MovieLens), its seeded stratified sample, and the evaluation query sets (reproducible, edit
counts, partial runs of words, splits)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "catalogue_search"
sys.path.insert(0, str(EXAMPLE))

import filmdata  # noqa: E402
import queries  # noqa: E402
from search import fuzzy_text  # noqa: E402


@pytest.fixture(scope="module")
def films() -> list[dict]:
    return filmdata.load_catalogue()


def test_the_catalogue_is_every_film_with_genres_decades_and_movielens_ids(films) -> None:
    assert len(films) == 58788
    assert len({f["id"] for f in films}) == len(films)
    toy = [f for f in films if f["title"] == "Toy Story" and f["year"] == 1995]
    assert len(toy) == 1 and toy[0]["decade"] == 1990
    assert set(toy[0]["genres"]) >= {"Animation", "Comedy"}
    assert toy[0]["movielens_id"] == 1  # MovieLens' own id of Toy Story (1995)
    assert 3000 < sum(f["movielens_id"] is not None for f in films) < 9066
    assert all(f["decade"] == f["year"] // 10 * 10 for f in films)
    assert all(set(f["genres"]) <= set(filmdata.GENRES) for f in films)


def test_the_sample_is_seeded_and_keeps_the_facets_in_proportion(films) -> None:
    a = filmdata.sample(films, 2000)
    assert a == filmdata.sample(films, 2000) and len(a) == 2000
    assert a != filmdata.sample(films, 2000, seed=7)
    assert len({f["id"] for f in a}) == 2000
    whole = Counter(f["decade"] for f in films)
    part = Counter(f["decade"] for f in a)
    for decade, n in whole.items():  # each stratum within one film of its share
        share = n * 2000 / len(films)
        assert abs(part[decade] - share) <= 1 + len({g for f in films for g in f["genres"]}), decade
    drama = sum("Drama" in f["genres"] for f in a) / 2000
    assert abs(drama - sum("Drama" in f["genres"] for f in films) / len(films)) < 0.02
    with pytest.raises(filmdata.CatalogueError, match="at least one"):
        filmdata.sample(films, 0)


def test_the_query_sets_are_reproducible_with_their_edit_counts(films) -> None:
    sample = filmdata.sample(films, 2000)
    made = queries.make_queries(sample)
    assert made == queries.make_queries(sample)
    assert made != queries.make_queries(sample, seed=3)
    by_kind = Counter(q["kind"] for q in made)
    assert by_kind["misspelled"] >= 500
    titles = {f["id"]: f["title"] for f in sample}
    unique = Counter(fuzzy_text(t) for t in titles.values())
    for q in made:
        assert q["split"] in ("dev", "test")
        if q["kind"] == "facet":
            assert q["query"] == "" and set(q["filters"]) == {"genre", "decade", "min_rating"}
            assert any(queries.matches(f, q["filters"]) for f in sample)
            continue
        title = titles[q["gold"]]
        assert unique[fuzzy_text(title)] == 1  # the gold is the only film of that title
        if q["kind"] == "exact":
            assert q["query"] == title
        elif q["kind"] == "misspelled":
            assert len(title) >= 5 and q["edits"] in (1, 2)
            assert queries.osa_distance(q["query"], title) == q["edits"]
        else:
            words, part = title.split(), q["query"].split()
            assert 2 <= len(part) < len(words)
            assert any(words[i : i + len(part)] == part for i in range(len(words)))
    edits = Counter(q["edits"] for q in made if q["kind"] == "misspelled")
    assert edits[1] > 100 and edits[2] > 100
    for kind in queries.KINDS:
        splits = Counter(q["split"] for q in made if q["kind"] == kind)
        # half each, within 2 (the split draws from a shuffled list of n + 2 flags)
        assert abs(splits["dev"] - splits["test"]) <= 2, kind
        assert splits["dev"] + splits["test"] == sum(q["kind"] == kind for q in made)


def test_direct_counts_follow_the_filters(films) -> None:
    f = {"genre": "animation", "decade": 1940, "min_rating": 7.0}
    counts = queries.direct_counts(films, f)
    n = sum("Animation" in x["genres"] and x["decade"] == 1940 and x["rating"] >= 7 for x in films)
    assert counts["decade"] == {1940: n} and counts["genre"]["Animation"] == n > 0
