"""A namespace's ``max_age`` setting, read through the shared duration grammar."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shipyard.cache.namespaces import InvalidName, parse_max_age


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("6h", 21600.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        (30, 30.0),
        (0.5, 0.5),
        (timedelta(minutes=1), 60.0),
    ],
)
def test_max_age_forms(value: Any, seconds: float) -> None:
    assert parse_max_age(value) == seconds


@pytest.mark.parametrize("value", [None, "off"])
def test_no_limit(value: Any) -> None:
    assert parse_max_age(value) is None


@pytest.mark.parametrize("value", ["soon", "6", "6x", ""])
def test_a_bad_max_age_is_a_usage_error_naming_it(value: str) -> None:
    with pytest.raises(InvalidName, match=rf"bad max_age {value!r}: .*e\.g\. 30d"):
        parse_max_age(value)


@pytest.mark.parametrize("value", [0, "0s", -5, timedelta(0)])
def test_max_age_must_be_positive(value: Any) -> None:
    with pytest.raises(InvalidName, match="max_age must be positive"):
        parse_max_age(value)


def test_invalid_name_is_still_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_max_age(True)
