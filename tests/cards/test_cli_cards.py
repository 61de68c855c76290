"""``shipyard cards list|get``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from click.testing import CliRunner

from shipyard.cards import get_cards
from shipyard.cli.main import main

if TYPE_CHECKING:
    from conftest import CardEnv


def test_get_writes_the_card_to_a_file(env: CardEnv, tmp_path: Path) -> None:
    task = env.run["start"].task.pathspec
    target = tmp_path / "card.html"
    result = CliRunner().invoke(main, ["cards", "get", task, "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == get_cards(task)[0].get()
    assert target.read_text().startswith("<!DOCTYPE html>")


def test_get_by_id_to_stdout_and_a_step_with_one_task(env: CardEnv) -> None:
    report = env.run["report"].task.pathspec
    result = CliRunner().invoke(main, ["cards", "get", report, "--id", "charts"])
    assert result.exit_code == 0, result.output
    assert "<h1>Charts</h1>" in result.output
    step = f"{env.run.pathspec}/start"  # a step pathspec names its only task
    assert 'id="artifacts"' in CliRunner().invoke(main, ["cards", "get", step]).output


def test_list_and_errors(env: CardEnv) -> None:
    report = env.run["report"].task.pathspec
    listing = CliRunner().invoke(main, ["cards", "list", report])
    assert listing.exit_code == 0 and "charts" in listing.output and "Charts" in listing.output
    several = CliRunner().invoke(main, ["cards", "get", report])
    assert several.exit_code == 2 and "pick one with --id" in several.output
    unknown = CliRunner().invoke(main, ["cards", "get", report, "--id", "nope"])
    assert unknown.exit_code == 1 and "has no card 'nope'; it has default, charts" in unknown.output
    missing = CliRunner().invoke(main, ["cards", "get", f"{env.run.pathspec}/start/999999"])
    assert missing.exit_code == 1


def test_a_task_without_cards_is_an_error(tmp_path: Path) -> None:
    from shipyard.testing import run_flow

    run = run_flow(
        """
from shipyard import FlowSpec, step


class PlainFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    )
    result = CliRunner().invoke(main, ["cards", "get", run["end"].task.pathspec])
    assert result.exit_code == 1 and "has no cards" in result.output
