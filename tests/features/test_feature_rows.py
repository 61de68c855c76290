"""FeatureSet.row and .frame: one code path for a request and for a training set."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard.features import (
    FeatureComputeError,
    FeatureDefinitionError,
    FeatureSet,
    Lookup,
    feature,
)


def _lengths(facts: pd.DataFrame, lookups: dict[str, pd.DataFrame]) -> Any:
    return facts["title"].fillna("").str.strip().str.len()


@feature(vectorized=_lengths)
def title_length(facts: dict[str, Any]) -> int:
    return len((facts.get("title") or "").strip())


@feature
def mean_rating(facts: dict[str, Any], lookups: dict[str, Any]) -> float:
    return float(lookups["profile"]["mean_rating"])


@feature
def rating_count(facts: dict[str, Any], lookups: dict[str, Any]) -> int:
    return int(lookups["profile"]["rating_count"])


PROFILE = Lookup(
    "profile_id",
    max_staleness=timedelta(hours=6),
    default={"mean_rating": 3.0, "rating_count": 0},
)
FEATURES = FeatureSet(
    "test-features", [title_length, mean_rating, rating_count], lookups={"profile": PROFILE}
)


def test_a_row_is_plain_python_with_lookup_defaults() -> None:
    row = FEATURES.row(
        {"title": " Heat ", "profile_id": "p1"},
        lookups={"profile": {"mean_rating": 4.5, "rating_count": 7}},
    )
    assert row == {"title_length": 4, "mean_rating": 4.5, "rating_count": 7}
    assert list(row) == list(FEATURES.names)
    # a lookup the service did not find is its declared default, as offline
    assert FEATURES.row({"title": None}) == {
        "title_length": 0,
        "mean_rating": 3.0,
        "rating_count": 0,
    }
    assert FEATURES.vector({"title": "ab"}, {"profile": None}) == [2, 3.0, 0]
    assert FEATURES.dtypes == {"title_length": "int", "mean_rating": "float", "rating_count": "int"}


def test_a_failing_feature_is_named() -> None:
    with pytest.raises(FeatureComputeError, match="'mean_rating'") as info:
        FEATURES.row({"title": "x"}, lookups={"profile": {"mean_rating": "n/a"}})
    assert info.value.feature == "mean_rating"
    with pytest.raises(FeatureComputeError, match="no lookup 'title'"):
        FEATURES.row({"title": "x"}, lookups={"title": {}})
    with pytest.raises(FeatureComputeError, match="facts must be a mapping"):
        FEATURES.row(["x"])  # type: ignore[arg-type]


def test_definition_errors_say_what_and_where() -> None:
    with pytest.raises(FeatureDefinitionError, match="takes 3 required parameters"):

        @feature
        def bad(a: Any, b: Any, c: Any) -> int:
            return 0

    with pytest.raises(FeatureDefinitionError, match="two features are named 'title_length'"):
        FeatureSet("dup", [title_length, title_length])
    with pytest.raises(FeatureDefinitionError, match="not a @feature"):
        FeatureSet("plain", [len])  # type: ignore[list-item]
    with pytest.raises(FeatureDefinitionError, match="max_staleness"):
        Lookup("profile_id", max_staleness=6)  # type: ignore[arg-type]


def test_row_path_does_not_import_pandas(tmp_path: Path) -> None:
    script = tmp_path / "rowonly.py"
    script.write_text(
        "import sys\n"
        "from shipyard.features import FeatureSet, Lookup, feature\n"
        "@feature\n"
        "def n(facts) -> int:\n"
        "    return len(facts['t'])\n"
        "fs = FeatureSet('s', [n], lookups={'p': Lookup('k', default={'a': 1})})\n"
        "assert fs.row({'t': 'abc'}) == {'n': 3}\n"
        "print(fs.version)\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
        "assert 'duckdb' not in sys.modules, 'duckdb imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) == 16


def _t(hours: float) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hours)


def _history() -> pd.DataFrame:
    # the profile aggregate after each of p1's ratings (a cumulative count and mean)
    return pd.DataFrame(
        {
            "profile_id": ["p1", "p1", "p1", "p2"],
            "as_of": [_t(0), _t(10), _t(20), _t(1)],
            "mean_rating": [4.0, 3.0, 2.0, 5.0],
            "rating_count": [1, 2, 3, 1],
        }
    )


def test_frame_joins_the_value_the_service_was_entitled_to() -> None:
    facts = pd.DataFrame(
        {
            "title": ["Heat", None, " Up ", "Alien", "Big"],
            "profile_id": ["p1", "p1", "p1", "p2", "p3"],
            # 12 h: entitled to the value as of 6 h (the 0 h one); 17 h -> 11 h (the 10 h
            # one); 5 h -> -1 h: nothing yet (the default); p3 has no history at all
            "ts": [_t(12), _t(17), _t(5), _t(30), _t(30)],
        }
    )
    out = FEATURES.frame(facts, history={"profile": _history()})
    assert list(out.columns) == list(FEATURES.names)
    assert out["mean_rating"].tolist() == [4.0, 3.0, 3.0, 5.0, 3.0]
    assert out["rating_count"].tolist() == [1, 2, 0, 1, 0]
    assert out["title_length"].tolist() == [4, 0, 2, 5, 3]
    # the same rows one at a time through .row, given what the join found: equal
    for i, facts_row in enumerate(facts.to_dict("records")):
        found = {"mean_rating": out["mean_rating"][i], "rating_count": out["rating_count"][i]}
        online = FEATURES.row(facts_row, {"profile": found})
        assert online == out.iloc[i].to_dict()


def test_a_logged_as_of_is_used_while_within_the_bound() -> None:
    facts = pd.DataFrame(
        {
            "title": ["a", "b", "c"],
            "profile_id": ["p1", "p1", "p1"],
            "ts": [_t(22), _t(22), _t(40)],
            # served the 20 h value at 22 h (fresh: recomputed exactly as served); served
            # the 10 h value at 22 h (within 6 h? no: 12 h old) -> entitled to 16 h, which is
            # still the 10 h value; at 40 h served the 0 h value (40 h old): entitled to
            # 34 h, the 20 h value, so the stale serving shows as a difference
            "profile.as_of": [_t(20), _t(10), _t(0)],
        }
    )
    out = FEATURES.frame(facts, history={"profile": _history()})
    assert out["mean_rating"].tolist() == [2.0, 3.0, 2.0]


def test_vectorised_and_row_forms_agree_and_both_are_used() -> None:
    facts = pd.DataFrame({"title": ["  x ", None, "hello"], "profile_id": ["p1"] * 3})
    fast = FEATURES.frame(facts)
    slow = FEATURES.frame(facts, vectorized=False)
    pd.testing.assert_frame_equal(fast, slow, check_dtype=False)
    calls: list[int] = []

    def counted(frame: pd.DataFrame, lookups: dict[str, pd.DataFrame]) -> list[int]:
        calls.append(len(frame))
        return [0] * len(frame)

    @feature(vectorized=counted)
    def zero(facts: dict[str, Any]) -> int:
        return 0

    FeatureSet("z", [zero]).frame([{"a": 1}, {"a": 2}])
    assert calls == [2]


def test_frame_errors_name_the_column() -> None:
    with pytest.raises(FeatureDefinitionError, match="no column 'ts'"):
        FEATURES.frame(pd.DataFrame({"profile_id": ["p1"]}), history={"profile": _history()})
    with pytest.raises(FeatureDefinitionError, match="no column 'as_of'"):
        FEATURES.frame(
            pd.DataFrame({"profile_id": ["p1"], "ts": [_t(1)]}),
            history={"profile": _history().drop(columns="as_of")},
        )
    with pytest.raises(FeatureDefinitionError, match="declares no lookup 'title'"):
        FEATURES.frame(pd.DataFrame({"profile_id": ["p1"]}), history={"title": _history()})


def test_a_feature_set_pickles_as_a_flow_artifact_would() -> None:
    import pickle

    loaded = pickle.loads(pickle.dumps(FEATURES))
    assert loaded.version == FEATURES.version
    assert loaded.features[0] is title_length  # by reference, as a function is
    facts = {"title": "a b", "profile_id": "p1"}
    assert loaded.row(facts) == FEATURES.row(facts)
