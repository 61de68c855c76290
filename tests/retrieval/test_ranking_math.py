"""Fusion, metrics and filters, checked against values worked out by hand (no model)."""

from __future__ import annotations

import math

import pytest

from shipyard.retrieval import FilterError, RetrievalError, mrr_at_k, ndcg_at_k, recall_at_k, rrf
from shipyard.retrieval.evaluation import _sign_test
from shipyard.retrieval.filters import MetaColumns
from shipyard.retrieval.keywords import words


def test_rrf_sums_weighted_reciprocal_ranks() -> None:
    fused = dict(rrf([["a", "b", "c"], ["c", "a"]]))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62)
    weighted = rrf({"bm25": ["a", "b"], "dense": ["b", "a"]}, {"bm25": 1.0, "dense": 3.0}, c=1)
    assert weighted == [("b", pytest.approx(1 / 3 + 3 / 2)), ("a", pytest.approx(1 / 2 + 3 / 3))]


def test_rrf_with_one_weight_zero_is_the_other_ranking_exactly() -> None:
    bm25 = ["d", "a", "c", "b"]
    dense = ["b", "c", "a", "e"]
    assert [x for x, _ in rrf([bm25, dense], [1.0, 0.0])] == bm25
    assert [x for x, _ in rrf([bm25, dense], [0.0, 2.0])] == dense


def test_rrf_uses_ranks_not_scores_and_breaks_ties_by_best_rank() -> None:
    # a and b tie on the sum (1/61 + 1/64 either way round): b was ranked first somewhere
    # earlier in the second list, a in the first: the better best rank is a tie, so order of
    # first appearance decides; the result never depends on score scales
    fused = rrf([["a", "x", "y", "b"], ["b", "z", "w", "a"]], limit=2)
    assert [x for x, _ in fused] == ["a", "b"]
    assert fused[0][1] == fused[1][1]
    assert rrf([["a", "a", "b"]]) == [("a", pytest.approx(1 / 61)), ("b", pytest.approx(1 / 63))]


def test_rrf_rejects_mismatched_or_negative_weights() -> None:
    with pytest.raises(RetrievalError, match="2 weights for 3 rankings"):
        rrf([["a"], ["b"], ["c"]], [1.0, 1.0])
    with pytest.raises(RetrievalError, match="negative"):
        rrf([["a"]], [-1.0])
    with pytest.raises(RetrievalError, match="fuzzy"):
        rrf({"bm25": ["a"]}, {"fuzzy": 1.0})


def test_recall_mrr_and_ndcg_match_hand_computed_values() -> None:
    ranked = ["x", "a", None, "b", "a", "y", None, None, None, None, "c"]
    relevant = {"a", "b", "c"}
    assert recall_at_k(ranked, relevant, 1) == 0.0
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, relevant, 11) == 1.0
    assert mrr_at_k(ranked, relevant, 10) == 0.5
    assert mrr_at_k(ranked, relevant, 1) == 0.0
    # gains at ranks 2 (a) and 4 (b); the second "a" at 5 earns nothing; "c" is past 10
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "b", "c"], relevant, 10) == pytest.approx(1.0)
    assert ndcg_at_k([], relevant, 10) == 0.0 and recall_at_k(["a"], set(), 5) == 0.0


def test_filters_select_rows_by_prefix_type_equality_lists_and_ranges() -> None:
    columns = MetaColumns(
        ["library/os.rst", "library/io.rst", "guide/a.md", "guide/b.html"],
        ["rst", "rst", "md", "html"],
        [
            {"year": 2024, "genre": "Drama"},
            {"year": 2020, "genre": ["Comedy", "Drama"]},
            {"year": "2024", "genre": "comedy"},
            {"rating": 7.5},
        ],
    )

    def rows(filters: dict[str, object]) -> list[int]:
        mask = columns.mask(filters)
        assert mask is not None
        return [i for i, keep in enumerate(mask) if keep]

    assert columns.mask(None) is None and columns.mask({}) is None
    assert rows({"path_prefix": "library/"}) == [0, 1]
    assert rows({"path_prefix": ["guide/b", "library/io"]}) == [1, 3]
    assert rows({"type": "rst", "year": 2024}) == [0]
    assert rows({"genre": "DRAMA"}) == [0, 1]  # case-insensitive; list-valued fields
    assert rows({"genre": ["comedy"]}) == [1, 2]
    assert rows({"year": {"gte": 2021}}) == [0]  # the string "2024" is not a number
    assert rows({"year": {"gte": 2019, "lt": 2024}}) == [1]
    assert rows({"rating": {"gt": 7}}) == [3]
    assert rows({"genre": {"ne": "drama"}}) == [2, 3]
    assert rows({"missing": 1}) == []
    assert columns.counts("genre") == {"Drama": 2, "Comedy": 2}  # as first seen, by count
    assert columns.counts("genre", columns.mask({"year": 2024})) == {"Drama": 1}
    with pytest.raises(FilterError, match="'year': unknown operator 'between'"):
        columns.mask({"year": {"between": [1, 2]}})
    with pytest.raises(FilterError, match="takes a number"):
        columns.mask({"year": {"gte": "recent"}})


def test_keywords_keep_dotted_names_whole_and_in_parts() -> None:
    assert words("The os.path.join() function joins PATHS") == [
        "os.path.join", "os", "path", "join", "function", "join", "path",
    ]  # fmt: skip
    assert words("__init__ and max_workers") == ["init", "max_workers", "max", "worker"]


def test_the_sign_test_that_keeps_equal_weights() -> None:
    assert _sign_test(5, 0) == pytest.approx(1 / 32)  # clear at 0.05
    assert _sign_test(2, 0) == pytest.approx(1 / 4)  # two dev questions of luck: not clear
    assert _sign_test(6, 1) == pytest.approx(8 / 128)  # (1 + 7) of 2**7: not clear at 0.05
    assert _sign_test(0, 0) == 1.0
