"""Model names, aliases, specs, metrics and tags: what is accepted and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import shipyard.registry as registry
from shipyard.registry import ModelSpec, ModelSpecError, parse_spec
from shipyard.registry.names import check_alias, check_name, clean_metrics, clean_tags


def test_public_surface_is_sorted_and_importable() -> None:
    assert registry.__all__ == sorted(registry.__all__)
    for name in registry.__all__:
        assert getattr(registry, name) is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ranker", ModelSpec("ranker")),
        ("ranker:3", ModelSpec("ranker", version=3)),
        ("ranker@prod", ModelSpec("ranker", alias="prod")),
        ("ranker@latest", ModelSpec("ranker")),
        ("ranker:latest", ModelSpec("ranker")),
        ("churn_v2-eu", ModelSpec("churn_v2-eu")),
        (" ranker@canary-1 ", ModelSpec("ranker", alias="canary-1")),
    ],
)
def test_specs_parse(text: str, expected: ModelSpec) -> None:
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Ranker", r"try 'ranker'"),
        ("ranker:0", r"version '0' is not a whole number >= 1"),
        ("ranker:x", r"version 'x'"),
        ("ranker:1@prod", r"not both : and @"),
        ("ranker@Prod", r"bad alias 'Prod'"),
        ("", r"bad model name ''"),
        ("9lives", r"a lowercase letter first"),
        ("a" * 64, r"1-63 characters"),
        ("rank.er", r"bad model name 'rank.er'"),
    ],
)
def test_bad_specs_say_what_and_how(text: str, message: str) -> None:
    with pytest.raises(ModelSpecError, match=message):
        parse_spec(text)


def test_spec_round_trips_to_string() -> None:
    for text in ("ranker", "ranker:3", "ranker@prod"):
        assert str(parse_spec(text)) == text


def test_latest_is_not_an_alias_and_names_are_checked() -> None:
    with pytest.raises(ModelSpecError, match="'latest' cannot be an alias"):
        check_alias("latest")
    assert check_alias("prod") == "prod"
    assert check_name("a" * 63) == "a" * 63
    with pytest.raises(ModelSpecError):
        check_name(3)


def test_metrics_accept_numbers_and_refuse_the_rest() -> None:
    assert clean_metrics({"auc": 1, "loss": np.float32(0.5), "n": np.int64(3)}) == {
        "auc": 1.0,
        "loss": 0.5,
        "n": 3.0,
    }
    assert clean_metrics(None) == {}
    with pytest.raises(ModelSpecError, match=r"metric 'auc' = 'high' \(str\) is not a number"):
        clean_metrics({"auc": "high"})
    with pytest.raises(ModelSpecError, match="not a number"):
        clean_metrics({"ok": True})
    with pytest.raises(ModelSpecError, match="not finite"):
        clean_metrics({"loss": math.nan})
    with pytest.raises(ModelSpecError, match="bad metric name"):
        clean_metrics({"": 1.0})
    with pytest.raises(ModelSpecError, match="dict of name -> number"):
        clean_metrics([("auc", 1.0)])  # type: ignore[arg-type]


def test_tags_are_a_list_of_strings_deduplicated_in_order() -> None:
    assert clean_tags(["b", "a", "b"]) == ["b", "a"]
    with pytest.raises(ModelSpecError, match=r"tags must be a list of strings, e.g. \['prod'\]"):
        clean_tags("prod")
    with pytest.raises(ModelSpecError, match="bad tag"):
        clean_tags(["ok", 3])  # type: ignore[list-item]
