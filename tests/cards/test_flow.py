"""``@card`` in real runs: the default card, blank cards with components, several cards per
step, a failing component, a failing task, and the graph-time checks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from shipyard.cards import get_cards
from shipyard.cards.client import Card
from shipyard.flow.exceptions import GraphError
from shipyard.testing import run_flow

if TYPE_CHECKING:
    from conftest import CardEnv


def _task(env: CardEnv, step: str) -> str:
    return env.run[step].task.pathspec


def _card(env: CardEnv, step: str, card_id: str) -> str:
    cards = get_cards(_task(env, step), id=card_id)
    assert len(cards) == 1, cards
    return cards[0].get()


def test_run_succeeds_and_records_descriptors(env: CardEnv) -> None:
    assert env.run.successful
    report = get_cards(_task(env, "report"))
    assert {(c.id, c.type, c.title) for c in report} == {
        ("default", "blank", "report"),
        ("charts", "blank", "Charts"),
    }
    for card in report:
        assert isinstance(card, Card) and re.fullmatch(r"[0-9a-f]{64}", card.key)
        assert card.size == len(card.get().encode("utf-8"))
    assert [c.id for c in get_cards(_task(env, "start"))] == ["default"]
    assert get_cards(_task(env, "end"), type="default")[0].id == "summary"


def test_default_card_lists_artifacts_parameters_timings_and_dag(env: CardEnv) -> None:
    html = _card(env, "start", "default")
    artifacts = html[html.index('id="artifacts"') :]
    for name in ("numbers", "label"):
        assert f'data-artifact="{name}"' in artifacts
    assert "builtins.list" in artifacts and "[0, 1, 2, 3, 4]" in artifacts
    assert "&lt;b&gt;bold?&lt;/b&gt;" in artifacts and "<b>bold?</b>" not in html
    params = html[html.index('id="parameters"') : html.index('id="dag"')]
    assert "alpha" in params and "0.5" in params
    assert 'data-artifact="alpha"' not in html  # parameters are listed once, as parameters
    assert "Duration" in html and "Attempt" in html
    dag = html[html.index('id="dag"') :]
    assert re.search(r'class="current"[^>]*><code>start</code>', dag)
    assert dag.index("<code>start</code>") < dag.index("<code>report</code>")


def test_blank_card_has_only_the_components(env: CardEnv) -> None:
    html = _card(env, "report", "default")
    assert 'id="artifacts"' not in html
    assert "<h1>Report &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in html
    assert "<script" not in html.lower()
    assert '<a href="https://example.com/docs"' in html
    assert "<th>fold</th><th>auc</th>" in html
    assert "&lt;i&gt;x&lt;/i&gt;" in html  # a dict cell, escaped
    assert "… 140 more rows" in html
    assert 'src="data:image/png;base64,' in html and "pixels" in html
    assert "builtins.list" in html


def test_failing_components_show_an_error_box_and_the_task_succeeds(env: CardEnv) -> None:
    html = _card(env, "report", "default")
    boxes = re.findall(r'<div class="error-box".*?</div>', html, re.S)
    assert len(boxes) == 2
    assert "Broken could not be rendered" in boxes[0]
    assert "this component is broken on purpose" in boxes[0]
    assert "Table could not be rendered" in boxes[1] and "got int" in boxes[1]
    assert "Broken failed to render" in env.run["report"].task.stderr
    assert env.run["report"].task.successful


def test_cards_by_id_get_their_own_components(env: CardEnv) -> None:
    charts = _card(env, "report", "charts")
    assert "<polyline" in charts and "<rect" in charts
    assert "&lt;b&gt;" in charts and "Markdown" not in charts
    assert "<h1>Charts</h1>" in charts
    main = _card(env, "report", "default")
    assert "<polyline" not in main


def test_default_type_shows_components_then_the_defaults(env: CardEnv) -> None:
    html = _card(env, "end", "summary")
    assert html.index("<strong>done</strong>") < html.index('id="task-facts"')
    assert 'id="artifacts"' in html


def test_cards_reference_nothing_remote(env: CardEnv) -> None:
    user_links = {"https://example.com/docs"}
    for step in ("start", "report", "end"):
        for card in get_cards(_task(env, step)):
            html = card.get()
            assert "<script" not in html.lower() and "<link" not in html.lower()
            assert "@import" not in html and "url(" not in html
            refs = re.findall(r'\b(?:src|href)\s*=\s*["\']?([^"\'\s>]+)', html, re.I)
            for ref in refs:
                assert ref.startswith("data:") or ref in user_links, (step, card.id, ref)


FAILING = """
from shipyard import FlowSpec, current, step
from shipyard.cards import Markdown, card


class FailingCardFlow(FlowSpec):
    @card
    @step
    def start(self):
        current.card.append(Markdown("never shown"))
        raise ValueError("the step fails")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_failed_task_keeps_no_card() -> None:
    run = run_flow(FAILING)
    assert not run.successful
    task = run["start"].task
    assert not task.successful
    assert get_cards(task) == []


def test_current_card_errors_name_the_fix() -> None:
    flow = """
from shipyard import FlowSpec, current, step
from shipyard.cards import Markdown, card


class WrongIdFlow(FlowSpec):
    @card(id="a")
    @card(id="b")
    @step
    def start(self):
        try:
            current.card.append(Markdown("which?"))
        except KeyError as exc:
            self.ambiguous = str(exc)
        try:
            current.card["c"]
        except KeyError as exc:
            self.unknown = str(exc)
        try:
            current.card["a"].append("plain text")
        except TypeError as exc:
            self.wrong_type = str(exc)
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    data = run_flow(flow)["start"].task.data
    assert "several cards" in data.ambiguous and "current.card[" in data.ambiguous
    assert "no card with that id" in data.unknown and '@card(id="c")' in data.unknown
    assert "Markdown(...)" in data.wrong_type


@pytest.mark.parametrize(
    ("decorators", "message"),
    [
        ('@card(type="fancy")', "unknown card type"),
        ('@card(id="a b")', "an id is"),
        ('@card(id="x")\n    @card(id="x")', "applied twice"),
        ('@card\n    @card(id="default")', "two @card decorators have the id 'default'"),
        ("@card(colour=1)", "unknown argument"),
    ],
)
def test_bad_card_use_fails_at_graph_time(decorators: str, message: str) -> None:
    flow = f"""
from shipyard import FlowSpec, step
from shipyard.cards import card


class BadCardFlow(FlowSpec):
    {decorators}
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    with pytest.raises((GraphError, TypeError), match=re.escape(message)):
        run_flow(flow)


def test_every_foreach_task_gets_its_own_card() -> None:
    flow = """
from shipyard import FlowSpec, current, step
from shipyard.cards import Markdown, card


class ForeachCardFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["a", "b", "c"]
        self.next(self.work, foreach="items")

    @card(type="default")
    @step
    def work(self):
        current.card.append(Markdown(f"item **{self.input}**"))
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""
    run = run_flow(flow)
    seen = set()
    for task in run["work"].tasks():
        (card,) = get_cards(task)
        html = card.get()
        assert "Foreach index" in html
        seen.update(re.findall(r"item <strong>(\w)</strong>", html))
    assert seen == {"a", "b", "c"}
