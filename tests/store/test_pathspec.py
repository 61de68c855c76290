from __future__ import annotations

import pytest

from shipyard.store.pathspec import Pathspec, parse, parse_artifact


def test_parses_each_depth() -> None:
    assert parse("F") == Pathspec("F")
    assert parse("F/12") == Pathspec("F", 12)
    assert parse("F/12/train") == Pathspec("F", 12, "train")
    assert parse("F/12/train/34") == Pathspec("F", 12, "train", 34)
    assert parse("F/12/train/34").depth == 4
    assert str(parse("/F/12/")) == "F/12"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("F/x", "run id 'x' is not a number"),
        ("F/1/2bad", "is not a step name"),
        ("F/1/s/t", "task id 't' is not a number"),
        ("F/1/s/2/3", "at most 4"),
        ("my-flow", "not a flow name"),
    ],
)
def test_bad_pathspecs_name_the_problem_and_the_form(text: str, why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse(text)
    assert why in str(info.value)
    assert "Flow/run_id[/step[/task_id]]" in str(info.value)


def test_depth_limits() -> None:
    with pytest.raises(ValueError, match="Flow/run_id/step/task_id"):
        parse("F/1", min_depth=4)
    with pytest.raises(ValueError, match="expected Flow/run_id, e.g. .MyFlow/12.$"):
        parse("F/1/s", min_depth=2, max_depth=2)


def test_artifact_address() -> None:
    assert parse_artifact("F/1/s/2:model") == (Pathspec("F", 1, "s", 2), "model")
    with pytest.raises(ValueError, match="Flow/run_id/step/task_id:name"):
        parse_artifact("F/1/s/2")
    with pytest.raises(ValueError, match="expected"):
        parse_artifact("F/1:model")
