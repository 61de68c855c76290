"""Scope strings: validation with clear errors, and matching with wildcards and admin."""

from __future__ import annotations

import pytest

from shipyard.keys import KeyInputError, allows, parse_scope, parse_scopes


@pytest.mark.parametrize(
    "scope",
    ["admin", "ui", "invoke:ranker", "invoke:*", "route:chat", "route:*", "invoke:a",
     "invoke:home-rows2", "route:" + "a" * 63, " ui "],
)  # fmt: skip
def test_valid_scopes(scope: str) -> None:
    assert parse_scope(scope) == scope.strip()


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("", "unknown scope ''"),
        ("Admin", "unknown scope 'Admin'"),
        ("invoke", "unknown scope 'invoke'"),
        ("deploy:ranker", "unknown scope 'deploy:ranker'"),
        ("invoke:", "service name '' is not valid"),
        ("invoke:1ranker", "service name '1ranker' is not valid"),
        ("invoke:ranker_v2", "service name 'ranker_v2' is not valid"),
        ("invoke:rank*", "service name 'rank\\*' is not valid"),
        ("route:-chat", "route name '-chat' is not valid"),
        ("route:" + "a" * 64, "route name"),
        ("invoke:api", "'api' can never be a service name"),
        ("invoke:metrics", "reserved"),
    ],
)
def test_invalid_scopes_say_what_and_how(scope: str, message: str) -> None:
    with pytest.raises(KeyInputError, match=message) as caught:
        parse_scope(scope)
    assert isinstance(caught.value, ValueError)
    text = str(caught.value)
    assert "e.g." in text or "reserved" in text


def test_route_names_may_be_reserved_service_names() -> None:
    assert parse_scope("route:api") == "route:api"


def test_parse_scopes_sorts_dedupes_and_needs_one() -> None:
    assert parse_scopes(["ui", "invoke:b", "invoke:a", "ui"]) == ("invoke:a", "invoke:b", "ui")
    with pytest.raises(KeyInputError, match="at least one scope"):
        parse_scopes([])


@pytest.mark.parametrize(
    ("held", "needed", "expected"),
    [
        (["invoke:ranker"], "invoke:ranker", True),
        (["invoke:ranker"], "invoke:other", False),
        (["invoke:*"], "invoke:anything", True),
        (["invoke:*"], "route:chat", False),
        (["route:*"], "route:chat", True),
        (["route:*"], "invoke:chat", False),
        (["route:chat"], "route:chat", True),
        (["ui"], "ui", True),
        (["ui"], "invoke:ranker", False),
        (["invoke:*", "route:*"], "ui", False),
        (["invoke:*", "route:*"], "admin", False),
        (["admin"], "invoke:ranker", True),
        (["admin"], "route:chat", True),
        (["admin"], "ui", True),
        (["admin"], "admin", True),
        ([], "ui", False),
    ],
)
def test_allows(held: list[str], needed: str, expected: bool) -> None:
    assert allows(held, needed) is expected
