"""Adaptive batching for ``@endpoint(batch=True)``: items from concurrent requests, one call.

A request carries one or more items (the endpoint's list parameter). The batcher queues them
and joins the items of consecutive requests into one call of at most ``max_batch_size``
items; a request's items stay in one call, unless the request alone is larger than
``max_batch_size`` - then it is cut into calls of ``max_batch_size`` and its results are
joined back. The results are split back by each request's item count; a result of the wrong
length fails the requests of that call with ``batch_size_mismatch`` and nothing else.

Requests are validated one by one before they are queued: a bad request is answered 422 on
its own and never joins a call. When a call raises an error *answer* (``shipyard.HTTPError``,
or Starlette's or FastAPI's ``HTTPException``; see ``answers.py``), the endpoint has said who
gets it:

* with ``items=`` (indices into the list the call got), exactly the requests holding those
  items get it, never retried; the other requests run again without them, in one call.
  Each gets the error of its own first named item when the error has ``item_errors``
  (``Signature.validate`` sets them), and a ``field`` that starts with that item's index
  (``rows[7]...``) is rewritten to count in the request's own list (``rows[0]...``), in
  the message too;
* without ``items``, every request of the call gets it, and nothing runs again (a 503
  "model not loaded" is everyone's answer, and re-running the call would not change it).

When a call raises anything else (a bug, or a model choking on one request's data), only the
requests that caused it fail:

* the exception is bisected: the requests are split in two halves, each run again,
  down to a single request, whose caller alone gets the error (500 with an error id). The
  extra calls of one failed batch are bounded by ``2 * ceil(log2 n)`` for ``n`` requests
  (enough to isolate one bad request); past that, the requests not yet told apart fail
  together with ``BatchRetriesExhausted``. ``bisections`` and ``extra_calls`` count them.

A function called again sees some items twice: it must not have side effects per item that
matter (a model's forward pass has none).

When to close a batch:

* at once when it is full;
* otherwise wait only while the recent arrival rate says another request will come before
  the oldest queued request has waited ``max_wait_ms``: an exponentially weighted mean of
  the gaps between arrivals (after at least two short gaps in a row), compared with the wait
  remaining; and wait at most twice that mean for the next one. A silence longer than
  ``max_wait_ms`` resets the mean, so a lone request on an idle worker runs immediately -
  unlike a fixed wait (Ray Serve's ``batch_wait_timeout_s``), which every lone request pays
  in full. A wait that saw no arrival stops further waits until requests are seen to
  overlap again: a client calling sequentially looks like a steady stream but can never
  join a batch, and must not pay the wait on every call.

A sync batch function runs inline on the event loop: while it runs, new requests queue in
the socket and form the next batch, without a thread hop per call. An async one is awaited.
One call runs at a time per endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from shipyard.errors import HTTPError
from shipyard.serve.answers import as_http_error
from shipyard.serve.errors import ServeError

__all__ = ["BatchRetriesExhausted", "BatchSizeMismatch", "BatchTimedOut", "Batcher"]

ALPHA = 0.25  # weight of the newest gap in the arrival mean
MIN_GAPS = 2  # short gaps seen in a row before a batch is held for more arrivals


class BatchSizeMismatch(ServeError):
    """A batch function returned a number of results other than the number of items."""


class BatchTimedOut(ServeError):
    """An async batch call overran the endpoint's timeout and was cancelled."""


class BatchRetriesExhausted(ServeError):
    """A failed batch spent its extra calls before its good requests were told apart."""


class _Request:
    __slots__ = ("future", "parts_left", "results", "batch_size")

    def __init__(self, future: asyncio.Future[tuple[list[Any], int]], parts: int) -> None:
        self.future = future
        self.parts_left = parts
        self.results: dict[int, Sequence[Any]] = {}
        self.batch_size = 0

    def deliver(self, start: int, results: Sequence[Any], batch_size: int) -> None:
        if self.future.done():
            return
        self.batch_size = max(self.batch_size, batch_size)
        self.parts_left -= 1
        if self.parts_left == 0 and not self.results:  # the common case: one part
            self.future.set_result((results, batch_size))  # type: ignore[arg-type]
            return
        self.results[start] = results
        if self.parts_left == 0:
            joined = [r for key in sorted(self.results) for r in self.results[key]]
            self.future.set_result((joined, self.batch_size))

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class _Part:
    __slots__ = ("request", "start", "items", "arrived")

    def __init__(self, request: _Request, start: int, items: list[Any], arrived: float) -> None:
        self.request = request
        self.start = start
        self.items = items
        self.arrived = arrived


class Batcher:
    """Joins the items of concurrent requests into calls of ``function``.

    ``function`` takes a list of items and returns a list of results (or an awaitable of
    one when ``is_async``). ``on_error`` turns an exception raised by a call - or a
    ``BatchSizeMismatch`` - into the exception the requests it is blamed on fail with (the
    dispatcher logs it once and gives it an error id). ``on_retried(requests, extra_calls)``
    is told when a failed call was run again to tell its requests apart. An async call
    that runs longer than ``timeout`` seconds is cancelled; its requests all fail with
    :class:`BatchTimedOut`, never run again (a slow batch is not a bad item).
    """

    def __init__(
        self,
        function: Callable[[list[Any]], Any],
        *,
        is_async: bool,
        max_batch_size: int,
        max_wait_ms: float,
        on_error: Callable[[BaseException], BaseException],
        name: str = "batch",
        clock: Callable[[], float] = time.monotonic,
        on_retried: Callable[[int, int], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.function = function
        self.timeout = timeout
        self.is_async = is_async
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.on_error = on_error
        self.name = name
        self.clock = clock
        self.on_retried = on_retried
        self.calls = 0  # number of calls made, for tests and metrics
        self.bisections = 0  # failed calls split in two to find their bad requests
        self.extra_calls = 0  # calls made again after a failure (halves and re-runs)
        self._queue: deque[_Part] = deque()
        self._pending = 0  # items queued
        self._gap: float | None = None  # mean seconds between arrivals
        self._gaps_seen = 0  # short gaps since the last silence
        self._trust = True  # did holding a batch pay off lately (see _wait_to_close)
        self._last_arrival: float | None = None
        self._runner: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[bool] | None = None

    def submit(self, items: list[Any]) -> asyncio.Future[tuple[list[Any], int]]:
        """Queue a request's items; the future gives its results and the size of its call."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[list[Any], int]] = loop.create_future()
        count = len(items)
        if count == 0:
            future.set_result(([], 0))
            return future
        now = self.clock()
        self._observe_arrival(now)
        size = self.max_batch_size
        if count <= size:
            self._queue.append(_Part(_Request(future, 1), 0, items, now))
        else:
            request = _Request(future, (count + size - 1) // size)
            for start in range(0, count, size):
                self._queue.append(_Part(request, start, items[start : start + size], now))
        self._pending += count
        if self._runner is None:
            self._runner = loop.create_task(self._run())
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(True)
        return future

    @property
    def pending(self) -> int:
        """Items queued and not yet in a call."""
        return self._pending

    def _observe_arrival(self, now: float) -> None:
        if self._last_arrival is not None:
            gap = now - self._last_arrival
            if gap >= self.max_wait:
                # a silence longer than the whole wait: whatever stream there was has
                # stopped, and the next lone request must not wait for it
                self._gap, self._gaps_seen = gap, 0
            else:
                self._gaps_seen += 1
                if self._runner is not None:
                    self._trust = True  # requests overlap: there is something to join
                self._gap = gap if self._gap is None else self._gap + ALPHA * (gap - self._gap)
        self._last_arrival = now

    async def _run(self) -> None:
        try:
            while self._queue:
                await self._wait_to_close()
                parts, total = self._take()
                await self._call(parts, total)
                if self._queue and self._pending < self.max_batch_size:
                    # let the reader pull in the frames that arrived during the call
                    # (one turn to poll the socket, one for the reader to run)
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
        finally:
            self._runner = None

    async def _wait_to_close(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending < self.max_batch_size:
            remaining = self._queue[0].arrived + self.max_wait - self.clock()
            gap = self._gap
            if gap is None or gap >= remaining or self._gaps_seen < MIN_GAPS or not self._trust:
                return  # nothing is expected in time: holding the batch only adds latency
            waiter: asyncio.Future[bool] = loop.create_future()
            self._waiter = waiter
            timer = loop.call_later(min(remaining, 2 * gap), _resolve, waiter)
            try:
                arrived = await waiter
            finally:
                timer.cancel()
                self._waiter = None
            self._trust = arrived
            if not arrived:
                # the expected request did not come. A caller that sends its next request
                # only after this one's answer (a loop of sequential calls) looks like a
                # steady stream but can never join; stop holding until requests overlap
                return

    def _take(self) -> tuple[list[_Part], int]:
        parts = [self._queue.popleft()]
        total = len(parts[0].items)
        while self._queue and total + len(self._queue[0].items) <= self.max_batch_size:
            part = self._queue.popleft()
            parts.append(part)
            total += len(part.items)
        self._pending -= total
        return parts, total

    async def _call(self, parts: list[_Part], total: int) -> None:
        # extra calls a failed batch may spend finding its bad requests: a bisection that
        # isolates one bad request among n runs two halves per level, 2 * ceil(log2 n)
        allowed = 2 * (len(parts) - 1).bit_length()
        budget = [allowed, allowed]  # left, allowed
        await self._settle(parts, total, budget)
        if budget[0] != allowed and self.on_retried is not None:
            self.on_retried(len(parts), allowed - budget[0])

    async def _settle(self, parts: list[_Part], total: int, budget: list[int]) -> None:
        """Run ``parts`` in one call and deliver; on failure, find whose items failed it."""
        results, error = await self._invoke(parts, total)
        if error is None:
            offset = 0
            for part in parts:
                end = offset + len(part.items)
                part.request.deliver(part.start, results[offset:end], total)
                offset = end
            return
        if isinstance(error, BatchSizeMismatch | BatchTimedOut):
            # a result list of the wrong length is the function's bug, not an item's, and a
            # slow call is slow for all: no re-run would tell the requests apart
            self._fail(parts, error)
            return
        answer = as_http_error(error)
        named = _named_parts(parts, answer.items) if answer is not None else None
        if (answer is not None and not answer.items) or (len(parts) == 1 and named is None):
            # the endpoint's answer to the whole call, or one request's own error
            self._fail(parts, error)
            return
        if named is not None:
            # the function said which items are bad: answer those requests with its error,
            # never retried, and run the others again without them
            self._fail_named(parts, named, error)
            rest = [part for i, part in enumerate(parts) if i not in named]
            if rest:
                await self._retry(rest, error, budget, halves=False)
            return
        await self._retry(parts, error, budget, halves=True)

    async def _retry(
        self, parts: list[_Part], error: BaseException, budget: list[int], *, halves: bool
    ) -> None:
        groups = [parts[: len(parts) // 2], parts[len(parts) // 2 :]] if halves else [parts]
        if budget[0] < len(groups):
            # out of extra calls (several bad requests, or a function that fails at random):
            # the requests not yet told apart fail together, with the last error as cause
            exhausted = BatchRetriesExhausted(
                f"{self.name}() kept failing; {len(parts)} requests of the batch were not "
                f"told apart from the bad ones within {budget[1]} extra calls"
            )
            exhausted.__cause__ = error
            self._fail(parts, exhausted)
            return
        budget[0] -= len(groups)
        self.extra_calls += len(groups)
        if halves:
            self.bisections += 1
        for group in groups:
            # a request cut into parts has failed already if another of its parts did
            group = [part for part in group if not part.request.future.done()]
            if group:
                await self._settle(group, sum(len(part.items) for part in group), budget)

    async def _invoke(
        self, parts: list[_Part], total: int
    ) -> tuple[Sequence[Any], BaseException | None]:
        """One call of the function: its results, or the exception that fails it."""
        if len(parts) == 1:
            items = parts[0].items
        else:
            items = []
            for part in parts:
                items.extend(part.items)
        self.calls += 1
        deadline: asyncio.Timeout | None = None
        try:
            results = self.function(items)
            if self.is_async:
                async with asyncio.timeout(self.timeout) as deadline:
                    results = await results
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline is not None and deadline.expired():
                return (), BatchTimedOut(
                    f"{self.name}() did not finish within {self.timeout:g} s for a batch of "
                    f"{total} items; it was cancelled"
                )
            return (), exc
        try:
            count: int | None = len(results)
        except TypeError:
            count = None
        if count != total:
            got = f"{count} results" if count is not None else type(results).__name__
            return (), BatchSizeMismatch(
                f"{self.name}() returned {got} for a batch of {total} items; a batch "
                "endpoint must return a list with one result per item, in order"
            )
        return results, None

    def _fail(self, parts: list[_Part], exc: BaseException) -> None:
        error = self.on_error(exc)
        for part in parts:
            part.request.fail(error)

    def _fail_named(self, parts: list[_Part], named: dict[int, int], exc: BaseException) -> None:
        """Fail the parts at the positions in ``named``, each with the error of its first
        named item (see :func:`_own_error`)."""
        error = self.on_error(exc)
        offset = 0
        for position, part in enumerate(parts):
            item = named.get(position)
            if item is not None:
                part.request.fail(_own_error(error, exc, item, item - offset + part.start))
            offset += len(part.items)


def _named_parts(parts: list[_Part], items: Sequence[int] | None) -> dict[int, int] | None:
    """The parts holding the items an ``HTTPError`` names (``items=``: indices into the
    call's list) as {position in ``parts``: the first named item's index in the call}, or
    None when it names none that exist (a bug of the endpoint: its requests are bisected
    like any other failure's)."""
    if not items:
        return None
    wanted = sorted(set(items))
    named: dict[int, int] = {}
    offset = 0
    for position, part in enumerate(parts):
        end = offset + len(part.items)
        first = next((index for index in wanted if offset <= index < end), None)
        if first is not None:
            named[position] = first
        offset = end
    return named or None


def _own_error(error: BaseException, raised: BaseException, item: int, local: int) -> BaseException:
    """The error one request of a batch gets for its item ``item`` of the call, which is
    item ``local`` of its own list: that item's own error (``item_errors``), with a field
    that starts with the item's index (``rows[7].x``) counted in the request's own list
    (``rows[0].x``), in the message too. A 5xx (logged under its error id) is sent as is."""
    if not isinstance(error, HTTPError) or error.status >= 500:
        return error
    own: dict[int, HTTPError] = raised.item_errors if isinstance(raised, HTTPError) else {}
    source = own.get(item, error)
    field, message = source.field, source.message
    if field is not None:
        name = field.partition("[")[0]
        head = f"{name}[{item}]"
        if field.startswith(head):
            new = f"{name}[{local}]"
            field, message = new + field[len(head) :], message.replace(head, new)
    if source is error and field == error.field:
        return error
    return HTTPError(error.status, message, field, type=error.type, error_id=error.error_id)


def _resolve(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)
