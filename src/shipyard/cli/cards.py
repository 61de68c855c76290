"""``shipyard cards list|get``: a task's cards (the HTML reports ``@card`` renders)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from shipyard.cards.client import Card, CardMissing, cards_of
from shipyard.cli._common import PathspecType, friendly, make_console, single_task, size
from shipyard.store import pathspec as _pathspec


@click.group("cards")
def cards_group() -> None:
    """List a task's cards, or write one's HTML.

    \b
    Examples:
      shipyard cards list TrainFlow/12/train/34
      shipyard cards get TrainFlow/12/train/34 -o card.html
    """


def _cards(pathspec: _pathspec.Pathspec) -> tuple[str, list[Card]]:
    task = single_task(pathspec)
    found = cards_of(task.pathspec, task.record.result)
    if not found:
        raise click.ClickException(
            f"task {task.pathspec} has no cards (only successful tasks of a step with @card "
            "have them)"
        )
    return task.pathspec, found


@cards_group.command("list")
@click.argument("pathspec", type=PathspecType(min_depth=3))
@friendly
def cards_list(pathspec: _pathspec.Pathspec) -> None:
    """Id, type, title and size of a task's cards.

    \b
    Example:
      shipyard cards list TrainFlow/12/train/34
    """
    task_pathspec, found = _cards(pathspec)
    console = make_console()
    console.print(f"[bold]{escape(task_pathspec)}[/bold]")
    for card in found:
        console.print(
            f"{escape(card.id)}  [dim]{escape(card.type)}[/dim]  {escape(card.title)}  "
            f"{size(card.size)}"
        )


@cards_group.command("get")
@click.argument("pathspec", type=PathspecType(min_depth=3))
@click.option("--id", "card_id", help="Which card, when the task has several.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the HTML here instead of to stdout.",
)
@friendly
def cards_get(pathspec: _pathspec.Pathspec, card_id: str | None, output: Path | None) -> None:
    """Write a task's card as one self-contained HTML file (to stdout, or -o FILE).

    \b
    Examples:
      shipyard cards get TrainFlow/12/train/34 -o card.html
      shipyard cards get TrainFlow/12/train/34 --id metrics > metrics.html
    """
    task_pathspec, cards = _cards(pathspec)
    ids = ", ".join(c.id for c in cards)
    if card_id is not None:
        cards = [c for c in cards if c.id == card_id]
        if not cards:
            raise click.ClickException(
                f"task {task_pathspec} has no card {card_id!r}; it has {ids}"
            )
    elif len(cards) > 1:
        raise click.UsageError(
            f"task {task_pathspec} has several cards ({ids}): pick one with --id"
        )
    try:
        html = cards[0].get()
    except CardMissing as exc:
        raise click.ClickException(str(exc)) from None
    if output is None:
        click.echo(html, nl=False)
        return
    output.write_text(html, encoding="utf-8")
    click.echo(f"wrote {size(len(html.encode('utf-8')))} to {output}", err=True)


COMMANDS: list[click.Command] = [cards_group]
