"""Adaptive batching: joining, splitting, failures per call, and when a batch closes."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

import pytest
from prometheus_client import generate_latest
from pydantic import BaseModel

from shipyard.serve import Service, ServiceClient, endpoint
from shipyard.serve.batching import Batcher, BatchRetriesExhausted
from shipyard.serve.schemas import EndpointError
from support import virtual_time


class Pair(BaseModel):
    user: str
    item: str


class FakeModel:
    """Scores a pair by the length of its user name; records every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.threads: set[int] = set()

    def predict(self, pairs: list[Pair]) -> list[float]:
        self.calls.append([p.user for p in pairs])
        self.threads.add(threading.get_ident())
        if any(p.user == "boom" for p in pairs):
            raise RuntimeError("model exploded")
        scores = [float(len(p.user)) for p in pairs]
        return scores[:-1] if any(p.user == "short" for p in pairs) else scores


class Ranker(Service):
    def load(self) -> None:
        self.model = FakeModel()

    @endpoint(batch=True, max_batch_size=4, max_wait_ms=5)
    def score(self, pairs: list[Pair]) -> list[float]:
        return self.model.predict(pairs)

    @endpoint(batch=True, max_batch_size=64, max_wait_ms=200)
    async def ascore(self, pairs: list[Pair]) -> list[float]:
        await asyncio.sleep(0)
        return self.model.predict(pairs)

    @endpoint(batch=True, max_batch_size=8)
    def named(self, pairs: list[Pair]) -> list[float]:
        self.model.calls.append([p.user for p in pairs])
        bad = [i for i, p in enumerate(pairs) if p.user == "bad"]
        if bad:
            raise EndpointError(422, "bad_pair", f"pair {bad[0]} is bad", items=bad)
        if any(p.user == "unnamed" for p in pairs):
            raise EndpointError(409, "conflict", "one of these pairs conflicts")
        return [1.0] * len(pairs)

    @endpoint(batch=True, max_batch_size=8, contract=lambda scores: all(s < 4 for s in scores))
    def checked(self, pairs: list[Pair]) -> list[float]:
        return self.model.predict(pairs)


def _pairs(*users: str) -> dict[str, Any]:
    return {"pairs": [{"user": u, "item": "i"} for u in users]}


@pytest.fixture(name="client")
def client_fixture() -> Any:
    with ServiceClient(Ranker) as client:
        yield client


def _sample(name: str) -> float:
    text = generate_latest().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _calls(client: ServiceClient) -> list[list[str]]:
    return client.instance.model.calls  # type: ignore[attr-defined, no-any-return]


def test_concurrent_requests_are_joined_into_one_call(client: ServiceClient) -> None:
    replies = client.call_many("score", [_pairs("a"), _pairs("bb", "ccc"), _pairs("dddd")])
    assert _calls(client) == [["a", "bb", "ccc", "dddd"]]
    assert [json.loads(r.body) for r in replies] == [[1.0], [2.0, 3.0], [4.0]]
    assert [r.batch_size for r in replies] == [4, 4, 4]
    # the thread of the event loop ran it: no thread hop per call
    assert client.instance.model.threads == {threading.get_ident()}  # type: ignore[attr-defined]


def test_calls_never_exceed_max_batch_size_and_keep_requests_whole(
    client: ServiceClient,
) -> None:
    bodies = [_pairs("a", "b"), _pairs("c", "d"), _pairs("e", "f", "g"), _pairs("h")]
    replies = client.call_many("score", bodies)
    assert _calls(client) == [["a", "b", "c", "d"], ["e", "f", "g", "h"]]
    assert all(r.status == 200 for r in replies)


def test_oversize_request_is_split_and_rejoined(client: ServiceClient) -> None:
    users = [chr(ord("a") + i) * (i + 1) for i in range(10)]
    replies = client.call_many("score", [_pairs(*users), _pairs("zz")])
    assert [len(call) for call in _calls(client)] == [4, 4, 3]  # last: 2 of it + "zz"
    assert _calls(client)[2] == users[8:] + ["zz"]
    assert json.loads(replies[0].body) == [float(i + 1) for i in range(10)]
    assert json.loads(replies[1].body) == [2.0]


def test_wrong_length_result_fails_only_that_call(
    client: ServiceClient, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [_pairs("a", "short"), _pairs("bb", "cc"), _pairs("dd", "eee")]
    replies = client.call_many("score", bodies)
    assert len(_calls(client)) == 2
    bad = [json.loads(r.body)["error"] for r in replies[:2]]
    assert [r.status for r in replies] == [500, 500, 200]
    assert {e["type"] for e in bad} == {"batch_size_mismatch"}
    assert "returned 3 results for a batch of 4 items" in bad[0]["message"]
    assert json.loads(replies[2].body) == [2.0, 3.0]
    log = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [e["event"] for e in log] == ["batch_size_mismatch"]
    assert log[0]["error_id"] == bad[0]["error_id"] == bad[1]["error_id"]


def test_exception_fails_only_the_bad_request(
    client: ServiceClient, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = 'shipyard_batch_extra_calls_total{endpoint="score",service="ranker"}'
    before = _sample(extra)
    replies = client.call_many("score", [_pairs("boom"), _pairs("x"), _pairs("a", "b", "c")])
    assert [r.status for r in replies] == [500, 200, 200]
    assert _sample(extra) == before + 2  # /metrics counts the extra calls
    error = json.loads(replies[0].body)["error"]
    assert error["type"] == "internal_error" and "exploded" not in replies[0].body.decode()
    assert json.loads(replies[1].body) == [1.0]
    # the failed call was split in two and each half run again; the bad half is one request
    assert _calls(client) == [["boom", "x"], ["boom"], ["x"], ["a", "b", "c"]]
    log = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [e["event"] for e in log] == ["endpoint_error", "batch_retried"]
    assert log[0]["error_id"] == error["error_id"] and "model exploded" in log[0]["traceback"]
    assert (log[1]["requests"], log[1]["extra_calls"]) == (2, 2)


def test_named_items_fail_their_requests_and_the_rest_run_again(
    client: ServiceClient,
) -> None:
    replies = client.call_many("named", [_pairs("a"), _pairs("b", "bad"), _pairs("c")])
    assert [r.status for r in replies] == [200, 422, 200]
    assert json.loads(replies[1].body)["error"] == {
        "type": "bad_pair",
        "message": "pair 2 is bad",
    }
    assert [json.loads(r.body) for r in (replies[0], replies[2])] == [[1.0], [1.0]]
    # the named request is never run again; the others once more, without it
    assert _calls(client) == [["a", "b", "bad", "c"], ["a", "c"]]


def test_an_endpoint_error_naming_no_item_answers_the_whole_call(client: ServiceClient) -> None:
    replies = client.call_many("named", [_pairs("a"), _pairs("unnamed"), _pairs("c")])
    assert [r.status for r in replies] == [409, 409, 409]
    assert {json.loads(r.body)["error"]["type"] for r in replies} == {"conflict"}
    assert _calls(client) == [["a", "unnamed", "c"]]  # the endpoint's answer: no re-run


def test_invalid_request_does_not_spoil_the_batch(client: ServiceClient) -> None:
    replies = client.call_many("score", [_pairs("a"), {"pairs": [{"user": "b"}]}, _pairs("c")])
    assert [r.status for r in replies] == [200, 422, 200]
    assert json.loads(replies[1].body)["error"]["field"] == "pairs.0.item"
    assert _calls(client) == [["a", "c"]]


def test_empty_list_needs_no_call(client: ServiceClient) -> None:
    assert client.post("score", {"pairs": []}) == (200, [])
    assert _calls(client) == []


def test_async_batch_function(client: ServiceClient) -> None:
    replies = client.post_many("ascore", [_pairs("a"), _pairs("bb")])
    assert replies == [(200, [1.0]), (200, [2.0])]
    assert _calls(client) == [["a", "bb"]]


def test_contract_applies_to_each_response(client: ServiceClient) -> None:
    replies = client.post_many("checked", [_pairs("a"), _pairs("abcd")])
    assert replies[0] == (200, [1.0])
    assert replies[1][0] == 500 and replies[1][1]["error"]["type"] == "contract_violation"


# -- the closing policy, on the Batcher itself, on virtual time: a loop whose clock jumps to its
# next timer, so the waits the batcher chooses are measured exactly (no wall-clock bounds) ------


def _recording_batcher(
    max_wait_ms: float, size: int = 64, times: list[float] | None = None
) -> tuple[Batcher, list[int]]:
    """A batcher on the virtual clock that records the size (and, into ``times``, the
    virtual time) of every call."""
    sizes: list[int] = []

    def run(items: list[Any]) -> list[Any]:
        sizes.append(len(items))
        if times is not None:
            times.append(virtual_time.now())
        return items

    batcher = Batcher(
        run,
        is_async=False,
        max_batch_size=size,
        max_wait_ms=max_wait_ms,
        on_error=lambda exc: exc,
        clock=virtual_time.now,
    )
    return batcher, sizes


def test_lone_request_on_idle_worker_is_not_held() -> None:
    # a lone request after a quiet spell must not wait, even when a burst of overlapping
    # requests (which taught the batcher to wait) came before the quiet spell
    batcher, sizes = _recording_batcher(max_wait_ms=200)

    async def scenario() -> float:
        burst = []
        for i in range(10):
            burst.append(batcher.submit([i]))
            await asyncio.sleep(0.001)
        await asyncio.gather(*burst)
        await asyncio.sleep(0.25)  # quiet: longer than max_wait_ms
        start = virtual_time.now()
        await batcher.submit(["lone"])
        return virtual_time.now() - start

    assert virtual_time.run(scenario()) == 0  # run at once: not held for a single moment
    assert sum(sizes) == 11 and max(sizes) > 1  # the burst was joined
    assert sizes[-1] == 1


def test_steady_arrivals_are_waited_for() -> None:
    batcher, sizes = _recording_batcher(max_wait_ms=300)

    async def scenario() -> float:
        futures = []
        for i in range(8):
            futures.append(batcher.submit([i]))
            await asyncio.sleep(0.002)
        start = virtual_time.now()
        await asyncio.gather(*futures)
        return virtual_time.now() - start

    waited = virtual_time.run(scenario())
    assert sizes[0] == 1  # no arrival history: the first runs at once
    assert max(sizes) >= 3 and sum(sizes) == 8  # the rest were waited for and joined
    assert waited <= 2 * 0.002  # after the last arrival: twice the mean gap, not max_wait_ms


def test_sparse_arrivals_run_at_once() -> None:
    batcher, sizes = _recording_batcher(max_wait_ms=40)

    async def scenario() -> list[float]:
        latencies = []
        for i in range(5):
            start = virtual_time.now()
            await batcher.submit([i])
            latencies.append(virtual_time.now() - start)
            await asyncio.sleep(0.06)  # longer than the wait: nobody will join
        return latencies

    latencies = virtual_time.run(scenario())
    assert sizes == [1, 1, 1, 1, 1]
    assert latencies == [0, 0, 0, 0, 0]


def test_sequential_caller_does_not_pay_the_wait() -> None:
    # a caller that sends the next request only after the answer (and 1 ms of its own work)
    # looks like a steady stream, but nothing can ever join its requests: at most one wait
    # is wasted
    batcher, sizes = _recording_batcher(max_wait_ms=500)
    work = 0.001

    async def scenario() -> float:
        start = virtual_time.now()
        for i in range(50):
            await batcher.submit([i])
            await asyncio.sleep(work)
        return virtual_time.now() - start

    waited = virtual_time.run(scenario()) - 50 * work
    assert sizes == [1] * 50
    assert waited == pytest.approx(2 * work)  # one wait of twice the mean gap, then none


def test_full_batch_runs_without_waiting() -> None:
    times: list[float] = []
    batcher, sizes = _recording_batcher(max_wait_ms=10_000, size=4, times=times)

    async def scenario() -> float:
        batcher.submit([0])
        await asyncio.sleep(0.001)  # prime the arrival mean with a short gap
        start = virtual_time.now()
        await asyncio.gather(*(batcher.submit([i]) for i in range(7)))
        return start

    start = virtual_time.run(scenario())
    assert sizes == [1, 4, 3]
    assert times[1] == start  # the full batch closed at once, not after the 10 s wait
    assert times[2] - start < 0.001  # the rest: twice the (decayed) mean gap of 1 ms at most


# -- a failed call: only the requests that caused it fail (bisection and named items) ---------


def _failing_batcher(
    bad: Any, *, size: int = 64, is_async: bool = False
) -> tuple[Batcher, list[list[Any]]]:
    """A batcher on the virtual clock whose function raises when ``bad(item)`` holds for an
    item of its call; it records every call's items."""
    calls: list[list[Any]] = []

    def run(items: list[Any]) -> list[Any]:
        calls.append(list(items))
        if any(bad(item) for item in items):
            raise ValueError("bad item")
        return [item * 10 for item in items]

    async def arun(items: list[Any]) -> list[Any]:
        await asyncio.sleep(0.001)
        return run(items)

    batcher = Batcher(
        arun if is_async else run,
        is_async=is_async,
        max_batch_size=size,
        max_wait_ms=5,
        on_error=lambda exc: exc,
        clock=virtual_time.now,
    )
    return batcher, calls


async def _outcomes(batcher: Batcher, requests: list[list[Any]]) -> list[Any]:
    # all queued before the first call runs: they form one batch
    futures = [batcher.submit(items) for items in requests]
    results = await asyncio.gather(*futures, return_exceptions=True)
    return [r if isinstance(r, BaseException) else r[0] for r in results]


@pytest.mark.parametrize("is_async", [False, True])
def test_one_bad_item_among_twenty_fails_only_its_request(is_async: bool) -> None:
    batcher, calls = _failing_batcher(lambda item: item == 13, is_async=is_async)
    outcomes = virtual_time.run(_outcomes(batcher, [[i] for i in range(20)]))
    failed = [i for i, o in enumerate(outcomes) if isinstance(o, BaseException)]
    assert failed == [13]
    assert isinstance(outcomes[13], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 13] == [
        [i * 10] for i in range(20) if i != 13
    ]
    assert len(calls[0]) == 20  # they did share one call first
    # at most two halves per level: 2 * ceil(log2 20) = 10 extra calls
    assert batcher.extra_calls == len(calls) - 1 <= 10
    assert batcher.bisections >= 1


def test_a_request_of_many_items_fails_whole_and_alone() -> None:
    batcher, _ = _failing_batcher(lambda item: item == -1)
    requests = [[1, 2], [3, -1, 4], [5], [6, 7]]
    outcomes = virtual_time.run(_outcomes(batcher, requests))
    assert [isinstance(o, ValueError) for o in outcomes] == [False, True, False, False]
    assert outcomes[0] == [10, 20] and outcomes[3] == [60, 70]


def test_a_request_cut_into_parts_fails_whole() -> None:
    batcher, calls = _failing_batcher(lambda item: item == -1, size=4)
    requests = [[1, 2, 3, 4, 5, -1], [7]]  # parts of 4 and 2 items; [5, -1] joins [7]
    outcomes = virtual_time.run(_outcomes(batcher, requests))
    assert isinstance(outcomes[0], ValueError)
    assert outcomes[1] == [70]
    assert calls[:2] == [[1, 2, 3, 4], [5, -1, 7]]


def test_several_bad_requests_stay_within_the_extra_calls() -> None:
    batcher, calls = _failing_batcher(lambda item: item % 2 == 0)  # every other one is bad
    outcomes = virtual_time.run(_outcomes(batcher, [[i] for i in range(16)]))
    assert batcher.extra_calls == len(calls) - 1 <= 2 * 4
    # every bad request failed; a good one either got its answer or, once the extra calls
    # ran out before it was told apart, BatchRetriesExhausted caused by the last error
    for i, outcome in enumerate(outcomes):
        if i % 2 == 0:
            assert isinstance(outcome, ValueError | BatchRetriesExhausted)
        elif isinstance(outcome, BaseException):
            assert isinstance(outcome, BatchRetriesExhausted)
            assert isinstance(outcome.__cause__, ValueError)
        else:
            assert outcome == [i * 10]
    exhausted = [o for o in outcomes if isinstance(o, BatchRetriesExhausted)]
    assert exhausted and "within 8 extra calls" in str(exhausted[0])
    assert sum(1 for o in outcomes if isinstance(o, list)) >= 1


def test_a_function_that_always_fails_is_not_retried_without_bound() -> None:
    batcher, calls = _failing_batcher(lambda item: True)
    outcomes = virtual_time.run(_outcomes(batcher, [[i] for i in range(64)]))
    assert all(isinstance(o, ValueError | BatchRetriesExhausted) for o in outcomes)
    assert len(calls) - 1 == batcher.extra_calls <= 2 * 6


def test_named_items_are_answered_and_never_retried() -> None:
    calls: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        calls.append(list(items))
        bad = [i for i, item in enumerate(items) if item < 0]
        if bad:
            raise EndpointError(422, "negative", "no negatives", items=bad)
        return items

    batcher = Batcher(
        run, is_async=False, max_batch_size=64, max_wait_ms=5, on_error=lambda exc: exc
    )
    outcomes = virtual_time.run(_outcomes(batcher, [[1], [-2, 3], [4], [-5]]))
    assert outcomes[0] == [1] and outcomes[2] == [4]
    assert outcomes[1] is outcomes[3] and isinstance(outcomes[1], EndpointError)
    assert calls == [[1, -2, 3, 4, -5], [1, 4]]  # one re-run, without the named requests
    assert batcher.extra_calls == 1 and batcher.bisections == 0


def test_named_items_out_of_range_are_bisected() -> None:
    def run(items: list[int]) -> list[int]:
        if 0 in items:
            raise EndpointError(422, "zero", "no zeros", items=[99])
        return items

    batcher = Batcher(
        run, is_async=False, max_batch_size=64, max_wait_ms=5, on_error=lambda exc: exc
    )
    outcomes = virtual_time.run(_outcomes(batcher, [[1], [0], [2], [3]]))
    assert outcomes[0] == [1] and outcomes[2:] == [[2], [3]]
    assert isinstance(outcomes[1], EndpointError) and batcher.bisections >= 1


def test_a_wrong_length_result_is_not_bisected() -> None:
    calls: list[int] = []

    def run(items: list[int]) -> list[int]:
        calls.append(len(items))
        return items[:-1]

    batcher = Batcher(
        run, is_async=False, max_batch_size=64, max_wait_ms=5, on_error=lambda exc: exc
    )
    outcomes = virtual_time.run(_outcomes(batcher, [[1], [2], [3]]))
    assert calls == [3] and batcher.extra_calls == 0
    assert all(type(o).__name__ == "BatchSizeMismatch" for o in outcomes)
