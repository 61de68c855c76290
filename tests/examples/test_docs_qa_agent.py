"""examples/docs_qa/agent.py case by case: the loop talks to a real gateway (in memory, its
key checked, its route's retries and errors as they are) whose upstream is a scripted fake
LLM provider — the one thing outside the system. Each test scripts the provider's turns and
checks the answer, its citations, the steps, and what the provider was sent."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shipyard.gateway import Gateway
from shipyard.gateway.testing import MockResponse, MockTransport
from shipyard.gateway.upstream_http import Request
from shipyard.keys import Guard, KeyStore
from shipyard.store.meta import MetaStore

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "docs_qa"


@pytest.fixture(scope="module")
def agent() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield importlib.import_module("agent")
    finally:
        sys.modules.pop("agent", None)
        sys.path.remove(str(EXAMPLE))


@dataclass(frozen=True)
class Hit:
    doc: str
    title: str
    text: str
    score: float


PASSAGES = [
    Hit(
        "library/shutil.rst.txt",
        "shutil",
        "shutil.copy(src, dst) copies the file src to the file or directory dst. "
        "Permission bits are copied too.",
        1.0,
    ),
    Hit(
        "library/os.rst.txt",
        "os",
        "os.remove(path) removes the file path. A directory cannot be removed this way.",
        0.9,
    ),
    Hit(
        "library/pathlib.rst.txt",
        "pathlib",
        "Path.unlink() removes this file or symbolic link. Use rmdir() for directories.",
        0.8,
    ),
]


class Searches:
    """A search over PASSAGES by shared words, recording its queries."""

    def __init__(self, passages: list[Hit] = PASSAGES) -> None:
        self.passages = passages
        self.queries: list[str] = []

    def __call__(self, query: str) -> list[Hit]:
        self.queries.append(query)
        words = {w.strip("?.,()").lower() for w in query.split()} - {"a", "the", "how", "do", "i"}
        return [
            p for p in self.passages if words & {w.strip(".,()").lower() for w in p.text.split()}
        ][:5]


def said(content: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def calls(*pairs: tuple[str, str]) -> dict[str, Any]:
    """An assistant turn calling tools: (name, raw arguments) pairs."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(pairs)
        ],
    }


class Provider:
    """The fake LLM provider: each request gets the next scripted turn (a message dict, or a
    MockResponse for an error); the requests' JSON bodies are kept."""

    def __init__(self, *turns: dict[str, Any] | MockResponse) -> None:
        self.turns = list(turns)
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> MockResponse:
        self.bodies.append(json.loads(request.body))
        turn = self.turns.pop(0)
        if isinstance(turn, MockResponse):
            return turn
        return MockResponse(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "model": "tiny-1",
                "choices": [{"index": 0, "message": turn, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        )


CONFIG = """
routes:
  - name: chat
    type: chat
    upstream: {provider: openai, base_url: "http://llm.test/v1", model: tiny}
    retries: 0
"""


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``gateway(provider)`` -> a ``chat`` for the route ``chat`` of a real gateway in front
    of the fake provider, with a real route key."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    meta = MetaStore.open(f"sqlite:///{tmp_path}/meta.db")
    keys = KeyStore(meta)
    (tmp_path / "gateway.yaml").write_text(CONFIG)
    opened: list[TestClient] = []

    def start(provider: Provider, route: str = "chat") -> Any:
        app = Gateway(
            tmp_path / "gateway.yaml",
            guard=Guard(keys, allowed_hosts=["testserver"]),
            transport=lambda origin: MockTransport(provider),
        )
        client = TestClient(app).__enter__()
        opened.append(client)
        _, key = keys.create("docs-qa", ["route:*"])
        agent = sys.modules["agent"]
        return agent.gateway_chat(client, route, key)

    yield start
    for client in opened:
        client.__exit__(None, None, None)
    keys.close()
    meta.close()


def test_answers_at_once_from_the_first_passages(agent: Any, gateway: Any) -> None:
    provider = Provider(said("Use shutil.copy(src, dst) [1]."))
    search = Searches()
    result = agent.answer("How do I copy a file?", search, gateway(provider))
    assert result.answer == "Use shutil.copy(src, dst) [1]."
    assert [c.doc for c in result.citations] == ["library/shutil.rst.txt"]
    assert result.citations[0].text == PASSAGES[0].text
    assert (result.steps, result.model) == (1, "tiny-1")
    assert search.queries == ["How do I copy a file?"]
    sent = provider.bodies[0]
    assert sent["model"] == "tiny"  # the route names its upstream model
    assert sent["tool_choice"] == "auto"
    assert sent["tools"][0]["function"]["name"] == "search_docs"
    assert "[1] library/shutil.rst.txt" in sent["messages"][1]["content"]


def test_a_tool_call_then_an_answer_cites_the_new_passages(agent: Any, gateway: Any) -> None:
    provider = Provider(
        calls(("search_docs", '{"query": "unlink symbolic link"}')),
        said("Path.unlink() removes a symbolic link [3]; not a directory [2]."),
    )
    search = Searches()
    result = agent.answer("How do I remove a file?", search, gateway(provider))
    assert search.queries == ["How do I remove a file?", "unlink symbolic link"]
    assert [c.doc for c in result.citations] == ["library/pathlib.rst.txt", "library/os.rst.txt"]
    assert result.steps == 2
    tool_turn = provider.bodies[1]["messages"][-1]
    assert tool_turn["role"] == "tool" and tool_turn["tool_call_id"] == "call_0"
    assert "[3] library/pathlib.rst.txt" in tool_turn["content"]


def test_a_repeated_search_stops_the_loop_and_forces_an_answer(agent: Any, gateway: Any) -> None:
    provider = Provider(
        calls(("search_docs", '{"query": "copy permission"}')),
        calls(("search_docs", '{"query": "  Copy   PERMISSION "}')),
        said("shutil.copy copies permission bits [1]."),
    )
    search = Searches()
    result = agent.answer("Does copying keep permissions?", search, gateway(provider))
    assert search.queries == ["Does copying keep permissions?", "copy permission"]
    assert result.steps == 3
    assert [c.doc for c in result.citations] == ["library/shutil.rst.txt"]
    forced = provider.bodies[2]
    assert forced["tool_choice"] == "none"
    assert "Already searched" in forced["messages"][-2]["content"]


def test_max_steps_then_an_answer_without_tools(agent: Any, gateway: Any) -> None:
    provider = Provider(
        calls(("search_docs", '{"query": "file one"}')),
        calls(("search_docs", '{"query": "file two"}')),
        said("It removes the file [2]."),
    )
    result = agent.answer("What does remove do?", Searches(), gateway(provider), max_steps=2)
    assert result.steps == 3
    assert [b["tool_choice"] for b in provider.bodies] == ["auto", "auto", "none"]
    assert result.answer == "It removes the file [2]."


def test_malformed_arguments_and_an_unknown_tool_are_answered_and_the_loop_goes_on(
    agent: Any, gateway: Any
) -> None:
    provider = Provider(
        calls(("search_docs", '{"query": "copy'), ("open_browser", '{"url": "x"}')),
        said("Copy with shutil.copy [1]."),
    )
    search = Searches()
    result = agent.answer("How do I copy a file?", search, gateway(provider))
    assert search.queries == ["How do I copy a file?"]  # neither call searched
    bad, unknown = provider.bodies[1]["messages"][-2:]
    assert "not valid JSON" in bad["content"] and bad["tool_call_id"] == "call_0"
    assert "unknown tool 'open_browser'" in unknown["content"]
    assert result.steps == 2 and [c.doc for c in result.citations] == ["library/shutil.rst.txt"]


@pytest.mark.parametrize("status", [429, 503])
def test_an_upstream_error_falls_back_to_an_extractive_answer(
    agent: Any, gateway: Any, status: int
) -> None:
    provider = Provider(MockResponse(status, json={"error": {"message": "busy"}}))
    result = agent.answer("How do I copy a file?", Searches(), gateway(provider))
    assert result.model == "extractive"
    assert result.answer.startswith("Extractive answer")
    assert "did not answer" in result.answer
    assert "shutil.copy(src, dst) copies the file src" in result.answer
    assert result.citations[0].doc == "library/shutil.rst.txt"


def test_nothing_retrieved_is_no_answer_whatever_the_model_says(agent: Any, gateway: Any) -> None:
    provider = Provider(
        calls(("search_docs", '{"query": "quantum flux"}')),
        said("The flux capacitor needs 1.21 gigawatts [1]."),
    )
    result = agent.answer("What powers the flux capacitor?", Searches(), gateway(provider))
    assert result.answer == agent.NO_ANSWER
    assert result.citations == []
    assert "No passages found" in provider.bodies[1]["messages"][-1]["content"]


def test_a_citation_that_was_not_retrieved_is_dropped(agent: Any, gateway: Any) -> None:
    provider = Provider(said("Use shutil.copy [1][7], or see [2, 9]."))
    result = agent.answer("How do I copy or remove a file?", Searches(), gateway(provider))
    assert result.answer == "Use shutil.copy [1], or see [2]."
    assert [c.doc for c in result.citations] == ["library/shutil.rst.txt", "library/os.rst.txt"]


def test_without_a_route_the_answer_is_extractive_and_says_so(agent: Any, gateway: Any) -> None:
    for chat in (None, gateway(Provider(), route="no-such-route")):
        result = agent.answer("How do I copy a file?", Searches(), chat)
        assert result.model == "extractive" and result.steps == 0
        assert "no language model route" in result.answer
        assert result.citations[0].doc == "library/shutil.rst.txt"


def test_extractive_answer_picks_the_sentences_that_share_the_question_words(agent: Any) -> None:
    result = agent.extractive_answer("Can a directory be removed with os.remove?", PASSAGES)
    assert "A directory cannot be removed this way." in result.answer
    assert result.citations[0].doc == "library/os.rst.txt"
    assert agent.extractive_answer("anything", []).answer == agent.NO_ANSWER
