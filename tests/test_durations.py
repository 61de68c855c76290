"""``shipyard.durations.parse_duration``: the one duration grammar (CLI options, cache
``max_age``), and the CLI's ``DurationType`` over it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner

from shipyard.cli._common import DurationType
from shipyard.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * 86400),
        ("12h", 43200),
        ("90m", 5400),
        ("1h30m", 5400),
        ("45s", 45),
        ("2w", 1209600),
        ("1.5h", 5400),
        (" 1H 30M ", 5400),  # case and spaces do not matter
        ("1d1d", 2 * 86400),  # parts add up
    ],
)
def test_text_with_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (90, timedelta(seconds=90)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(minutes=2), timedelta(minutes=2)),
    ],
)
def test_seconds_and_timedeltas_from_code(value: Any, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "3x", "1h-2m", "h1", "1.h", "soon"])
def test_bad_text_names_the_value_and_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad duration .*: use numbers with a unit s/m/h/d/w"):
        parse_duration(text)
    with pytest.raises(ValueError, match=r"e\.g\. 30d, 12h, 1h30m"):
        parse_duration(text)


@pytest.mark.parametrize("value", [True, None, [1]])
def test_other_types_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match=r"a number of seconds or a timedelta, got"):
        parse_duration(value)


def test_the_message_names_what_was_being_parsed() -> None:
    with pytest.raises(ValueError, match=r"^bad max_age '3x':"):
        parse_duration("3x", what="max_age")


@click.command()
@click.option("--older-than", type=DurationType())
def _command(older_than: timedelta) -> None:
    click.echo(older_than.total_seconds())


def test_the_cli_option_parses_a_duration() -> None:
    result = CliRunner().invoke(_command, ["--older-than", "1h30m"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "5400.0"


def test_the_cli_option_refuses_a_bad_duration_as_a_usage_error() -> None:
    result = CliRunner().invoke(_command, ["--older-than", "3x"])
    assert result.exit_code == 2
    assert "bad duration '3x'" in result.output
