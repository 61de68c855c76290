"""An async call that overruns its endpoint's timeout is cancelled by the worker itself: its
caller gets 504 ``timeout``, the rest of the worker is untouched. An async batch call that
overruns fails each of its requests with the 504, once: a slow batch is not bisected."""

from __future__ import annotations

import asyncio
from typing import Any

from shipyard.serve import Service, endpoint
from shipyard.serve.testing import ServiceClient


class Sleepy(Service):
    def load(self) -> None:
        self.batches: list[list[float]] = []
        self.cancelled = 0

    @endpoint(timeout=0.2)
    async def nap(self, seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return "rested"

    @endpoint(timeout=5)
    async def own_timeout(self) -> str:
        async with asyncio.timeout(0.01):  # the endpoint's own: a 500, as any exception
            await asyncio.sleep(1)
        return "never"

    @endpoint(batch=True, max_batch_size=8, max_wait_ms=50, timeout=0.2)
    async def naps(self, seconds: list[float]) -> list[str]:
        self.batches.append(seconds)
        await asyncio.sleep(max(seconds))
        return ["rested"] * len(seconds)


def test_an_overrunning_async_call_gets_504_and_the_others_their_answers() -> None:
    with ServiceClient(Sleepy) as client:
        replies = client.post_many("nap", [{"seconds": 5}, {"seconds": 0}, {"seconds": 0.01}])
        slow, *fast = replies
        assert slow[0] == 504 and slow[1]["error"]["type"] == "timeout", slow
        assert slow[1]["error"]["message"] == (
            "sleepy/nap did not finish within 0.2 s; it was cancelled"
        )
        assert fast == [(200, "rested")] * 2
        assert client.instance.cancelled == 1  # type: ignore[attr-defined]


def test_an_endpoints_own_timeout_error_is_a_500() -> None:
    with ServiceClient(Sleepy) as client:
        status, body = client.post("own_timeout", {})
        assert status == 500 and body["error"]["type"] == "internal_error"


def test_an_overrunning_async_batch_fails_its_requests_once() -> None:
    with ServiceClient(Sleepy) as client:
        bodies: list[Any] = [{"seconds": [5.0]}, {"seconds": [0.0]}, {"seconds": [0.0, 0.0]}]
        replies = client.post_many("naps", bodies)
        assert [status for status, _ in replies] == [504] * 3
        assert {body["error"]["type"] for _, body in replies} == {"timeout"}
        assert "cancelled" in replies[0][1]["error"]["message"]
        assert client.instance.batches == [[5.0, 0.0, 0.0, 0.0]]  # type: ignore[attr-defined]
        # the endpoint serves the next batch as before
        assert client.post_many("naps", [{"seconds": [0.0]}]) == [(200, ["rested"])]
