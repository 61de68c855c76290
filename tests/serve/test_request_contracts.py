"""Output contracts that see the request: a two-parameter ``check(answer, request)`` gets the
call's arguments by name (sync, async, pooled and batch endpoints), so an answer is checked
against what was asked; a one-parameter check still gets the answer alone."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.serve import Service, ServiceClient, endpoint
from shipyard.serve.schemas import takes_request


def spans_inside(answer: list[dict[str, Any]], request: dict[str, Any]) -> bool:
    text = request["text"]
    return all(text[s["start"] : s["end"]] == s["text"] for s in answer)


def one_per_item(answer: list[int], request: dict[str, Any]) -> bool:
    return len(answer) == len(request["words"]) and all(n >= 0 for n in answer)


class Spans(Service):
    @endpoint(contract=spans_inside)
    def find(self, text: str, word: str, shift: int = 0) -> list[dict[str, Any]]:
        at = text.find(word)
        if at < 0:
            return []
        return [{"text": word, "start": at + shift, "end": at + len(word) + shift}]

    @endpoint(contract=spans_inside)
    async def afind(self, text: str, word: str, shift: int = 0) -> list[dict[str, Any]]:
        return self.find(text, word, shift)

    @endpoint(contract=spans_inside, concurrency=2)
    def pooled(self, text: str, word: str, shift: int = 0) -> list[dict[str, Any]]:
        return self.find(text, word, shift)

    @endpoint(batch=True, contract=one_per_item)
    def lengths(self, words: list[str]) -> list[int]:
        return [-1 if w == "bad" else len(w) for w in words]

    @endpoint(contract=lambda answer: answer > 0)
    def plain(self, n: int) -> int:
        return n


@pytest.fixture(name="client")
def client_fixture() -> Any:
    with ServiceClient(Spans) as client:
        yield client


@pytest.mark.parametrize("name", ["find", "afind", "pooled"])
def test_a_two_parameter_contract_checks_the_answer_against_the_request(
    client: ServiceClient, name: str
) -> None:
    text = "INT. CAFÉ 🎉 - NIGHT, José waits"
    status, body = client.post(name, {"text": text, "word": "José"})
    assert status == 200 and body[0]["text"] == "José"
    status, body = client.post(name, {"text": text, "word": "José", "shift": 1})
    assert status == 500 and body["error"]["type"] == "contract_violation"
    assert "spans_inside() returned False" in body["error"]["message"]


def test_a_batch_endpoints_contract_gets_each_requests_own_list(client: ServiceClient) -> None:
    replies = client.post_many("lengths", [{"words": ["ab", "c"]}, {"words": ["bad", "x"]}])
    assert replies[0] == (200, [2, 1])
    assert replies[1][0] == 500 and replies[1][1]["error"]["type"] == "contract_violation"


def test_a_one_parameter_contract_still_gets_the_answer_alone(client: ServiceClient) -> None:
    assert client.post("plain", {"n": 2}) == (200, 2)
    assert client.post("plain", {"n": 0})[0] == 500


def test_which_predicates_take_the_request() -> None:
    assert takes_request(spans_inside) and takes_request(lambda a, r: True)
    assert takes_request(lambda *args: True)
    assert not takes_request(lambda a: True) and not takes_request(lambda a, *, r=1: True)
    assert not takes_request(len)
