"""``POST /{service}/{endpoint}``: the host's hot path, as a raw ASGI handler.

It never parses the body (the worker does, with validators built at load): it finds the
service, asks the guard (a cached answer), picks the least-loaded ready replica, forwards the
bytes and sends the worker's answer back. The only work on the front is routing and
bookkeeping, so it is inlined on purpose.

A call is admitted before any byte of its body is read, in this order: the service and
endpoint, the guard, a declared ``Content-Length`` over the largest body (413), the host's
body budget (:mod:`~shipyard.serve.bodies`: 503 ``overloaded``), a replica with room (503).
A body that came whole in the server's first message goes to the worker in one frame; a
larger one is streamed to it as it arrives (protocol.py's CHUNKs), and the host stops
reading its client while the worker's connection has more than a MB waiting. A streamed
body found too large, over the budget, poison, or left by its client is dropped by the
worker (ABORT) and never runs.

A call is timed here at its endpoint's ``timeout`` when the endpoint is sync (the worker
runs it inline and cannot stop it), and at ``timeout`` + 1 s when it is async (the worker
cancels it itself and answers 504; if it did not, its event loop is held, e.g. by a blocking
call inside ``async def``) or pooled (``concurrency=N``: the worker times it from the moment
it began in its thread and answers 504 ``OVERRAN``, and the host retires the replica as if
it had timed the call itself). A call that overran here gets 504 and its replica is retired
(``Supervisor.retire``); the calls queued on that replica that its worker never started
(``NotStarted``) are sent again to another replica, each timed afresh: they never ran. A
streamed body is not kept, so a streamed call not started is answered 503
``worker_retiring`` (with ``Retry-After``) instead.

A request that was in flight at worker crashes is tracked (:mod:`~shipyard.serve.poison`):
only while some request is suspected or refused does a call pay a dict lookup more. Calls
refused before a worker saw them are logged by :class:`~shipyard.serve.accesslog.RefusalLog`.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from shipyard.errors import JSON, error_body
from shipyard.serve.accesslog import RefusalLog
from shipyard.serve.bodies import MAX_BODY_BUFFER, BodyBudget
from shipyard.serve.memory import format_size
from shipyard.serve.metrics import HostMetrics
from shipyard.serve.poison import Body, Digested, Held, PoisonRequests, body_hasher
from shipyard.serve.protocol import OVERRAN
from shipyard.serve.replica import NotStarted, Replica, ReplicaGone
from shipyard.serve.supervisor import ServiceGroup, Supervisor

if TYPE_CHECKING:
    from shipyard.keys import Guard
    from shipyard.serve.protocol import Frame

#: the largest request body a service call may send, by default
MAX_BODY = 16 << 20
#: seconds an async call may run past its timeout before the host gives up on the worker
ASYNC_GRACE = 1.0
#: how many replicas a call is sent to when the ones before did not start it (retiring)
MAX_SENDS = 3
#: what ``_await`` returns for a call the worker did not start
_NOT_STARTED = (0, b"")


class Invoker:
    """Calls of the services ``supervisor`` runs, checked by ``guard``, counted in
    ``metrics``; with ``access_log``, one JSON line per call on stderr (refusals through
    ``refusal_log``, rate-limited); requests that crash workers are refused by ``poison``.
    Bodies are at most ``max_body`` bytes each and ``max_body_buffer`` bytes together."""

    def __init__(
        self,
        *,
        supervisor: Supervisor,
        guard: Guard,
        metrics: HostMetrics,
        max_body: int = MAX_BODY,
        max_body_buffer: int = MAX_BODY_BUFFER,
        access_log: bool = False,
        poison: PoisonRequests | None = None,
        refusal_log: RefusalLog | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.guard = guard
        self.metrics = metrics
        self.max_body = max_body
        #: the bytes of the bodies admitted and not answered yet (``--max-body-buffer``)
        self.budget = BodyBudget(max_body_buffer)
        metrics.body_bytes.set_function(lambda: self.budget.held)
        #: the largest body a call may have: ``max_body``, or the whole budget if smaller
        self.body_limit = min(max_body, max_body_buffer)
        self.access_log = access_log
        self.poison = poison or PoisonRequests()
        self.poison.on_held = self._count_held
        metrics.poison_hashes.set_function(self.poison.held_count)
        self.refusal_log = refusal_log or RefusalLog()

    def endpoint(self) -> ASGIApp:
        """The same calls as an ASGI endpoint of a route ``/{service}/{endpoint}``."""
        return _RouteEndpoint(self)

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, service: str, endpoint: str
    ) -> None:
        started = time.perf_counter()
        group = self.supervisor.services.get(service)
        if group is None:
            message = f"no service named {service!r}"
            await self._refuse(send, service, endpoint, started, 404, "not_found", message)
            return
        found = group.endpoints.get(endpoint)
        if found is None:
            known = sorted(group.endpoints)
            message = f"service {service!r} has no endpoint {endpoint!r}; it has {known}"
            await self._refuse(send, service, endpoint, started, 404, "not_found", message)
            return
        denied = self.guard.invoke_refusal(scope, service)
        if denied is not None:
            await self._refuse(
                send, service, endpoint, started, denied.status, denied.type, denied.message
            )
            return
        declared = _declared_length(scope)
        if declared > self.body_limit:
            await self._too_large(send, service, endpoint, started, declared)
            return
        # admitted before any byte of the body is read: the budget, then a replica
        budget = self.budget
        reserved = declared if declared > 0 else 0
        if reserved and not budget.reserve(reserved):
            await self._over_budget(send, service, endpoint, started, reserved)
            return
        try:
            index, info = found
            replica = group.pick(self.supervisor.max_in_flight)
            if replica is None:
                reason = "overloaded" if group.ready_count else "unavailable"
                self.metrics.rejected.labels(service, reason).inc()
                message = (
                    f"service {service!r} is overloaded; retry shortly"
                    if group.ready_count
                    else f"service {service!r} has no ready replica (restarting); retry shortly"
                )
                await self._refuse(send, service, endpoint, started, 503, reason, message, 0, 1)
                return
            # inline on the worker's loop (sync, no pool): the hot path, so not _inline()
            sync = not info.get("async", False) and not info.get("concurrency")
            future: asyncio.Future[Frame] | None = None
            streamed = False
            try:  # until the request is sent, it is pending on its replica
                first = await receive()
                if first["type"] != "http.request":
                    return  # the client left before its body: nobody to answer
                body = first.get("body", b"")
                size = len(body)
                if size > reserved:  # no length declared (chunked), or one the body outgrew
                    if size > self.body_limit:
                        await self._too_large(send, service, endpoint, started, size)
                        return
                    if not budget.reserve(size - reserved):
                        await self._over_budget(send, service, endpoint, started, size)
                        return
                    reserved = size
                streamed = first.get("more_body", False)
                if streamed:  # the rest follows: stream it to the worker as it comes
                    request_id, future = replica.open(index, body, sync)
                else:
                    poison = self.poison
                    if poison.holding and (held := poison.refusal(service, endpoint, body)):
                        await self._refuse_poison(send, service, endpoint, started, held, size)
                        return
                    future = replica.send(index, body, sync)
            except ReplicaGone as exc:  # gone between pick and send: the call never reached it
                status, payload = 503, error_body("worker_crashed", exc.reason)
            finally:
                replica.pending -= 1
            if future is None:
                pass
            elif streamed:
                call = (group, service, endpoint, info)
                answer = await self._stream(
                    receive, send, replica, request_id, future, body, reserved, call, started
                )
                if answer is None:
                    return  # refused here, or the client left: the worker dropped the body
                status, payload, size = answer
            else:
                status, payload, replica = await self._call(
                    future, replica, group, service, (index, endpoint), body, info
                )
        finally:
            if reserved:
                budget.release(reserved)
        await _send(send, status, payload, retry_after=1 if status == 503 else 0)
        elapsed = time.perf_counter() - started
        counters = self.metrics.endpoint(service, endpoint)
        counters.count(status)
        counters.latency.observe(elapsed)
        if self.access_log:
            # one JSON line straight to fd 2: the logging module costs more than the request
            # routing itself; service and endpoint names are [a-z0-9_-], safe to inline
            os.write(
                2,
                (
                    f'{{"ts": {time.time():.6f}, "service": "{service}", "endpoint": "{endpoint}", '
                    f'"status": {status}, "ms": {elapsed * 1000:.3f}, "replica": {replica.number}, '
                    f'"bytes_in": {size}, "bytes_out": {len(payload)}}}\n'
                ).encode(),
            )

    async def _call(
        self,
        future: asyncio.Future[Frame],
        replica: Replica,
        group: ServiceGroup,
        service: str,
        target: tuple[int, str],
        body: bytes,
        info: dict[str, Any],
    ) -> tuple[int, bytes, Replica]:
        """The answer to a call sent to ``replica`` (and the replica that gave it): a call
        its worker did not start is sent to another replica, at most :data:`MAX_SENDS` in
        all, each timed afresh. ``target``: the endpoint's index and name."""
        index, endpoint = target
        sync = _inline(info)
        sends = 1
        while True:
            answer = await self._await(future, replica, group, service, endpoint, body, info)
            if answer is not _NOT_STARTED:
                return answer[0], answer[1], replica
            if sends >= MAX_SENDS:
                return 503, _not_started(service, endpoint, sends), replica
            picked = group.pick(self.supervisor.max_in_flight)
            if picked is None:
                return 503, _not_started(service, endpoint, sends), replica
            self.metrics.resent.labels(service).inc()
            replica, sends = picked, sends + 1
            try:
                future = replica.send(index, body, sync)
            except ReplicaGone as exc:
                return 503, error_body("worker_crashed", exc.reason), replica
            finally:
                replica.pending -= 1

    async def _await(
        self,
        future: asyncio.Future[Frame],
        replica: Replica,
        group: ServiceGroup,
        service: str,
        endpoint: str,
        body: Body,
        info: dict[str, Any],
    ) -> tuple[int, bytes]:
        """The worker's answer to a call sent to ``replica``: its frame, a 504 when it
        overran (the replica is retired), a 503 when the worker went away under it, and
        ``_NOT_STARTED`` when the worker did not run it."""
        timeout = info.get("timeout") or 30.0
        is_async = info.get("async", False)
        pooled = bool(info.get("concurrency"))
        limit = timeout + ASYNC_GRACE if is_async or pooled else timeout
        request_id: int | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(limit):
                        frame = await future
                    break
                except TimeoutError:
                    request_id = replica.request_id(future)
                    if request_id is None:  # answered at the very moment its timer fired
                        return 504, _timed_out(service, endpoint, timeout)
                    limit = _waiting(replica, request_id, timeout, is_async, pooled)
                    if limit is None:
                        del replica.in_flight[request_id]
                        raise
                future = replica.wait_again(request_id)
        except TimeoutError:
            self.supervisor.retire(
                group, replica, f"a call to {endpoint!r} ran longer than its timeout, {timeout:g} s"
            )
            # queued behind the call that overran, it may never have started: then it is not
            # this call's 504 but another replica's to run (the worker says, within a second)
            if request_id is not None and await replica.started(request_id, 1.0) is False:
                return _NOT_STARTED
            return 504, _timed_out(service, endpoint, timeout)
        except NotStarted:
            return _NOT_STARTED
        except ReplicaGone as exc:
            return 503, self._crashed(replica, service, endpoint, body, exc)
        if frame.extra:
            if pooled and frame.extra == OVERRAN:  # the worker timed it: its thread runs on
                reason = f"a call to {endpoint!r} ran longer than its timeout, {timeout:g} s"
                self.supervisor.retire(group, replica, reason)
                return frame.code, frame.payload
            self.metrics.endpoint(service, endpoint).batch_size.observe(frame.extra)
        if self.poison.suspecting:
            self.poison.answered(service, endpoint, body)
        return frame.code, frame.payload

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        replica: Replica,
        request_id: int,
        future: asyncio.Future[Frame],
        first: bytes,
        reserved: int,
        call: tuple[ServiceGroup, str, str, dict[str, Any]],
        started: float,
    ) -> tuple[int, bytes, int] | None:
        """Send the rest of a call's body to ``replica`` as it arrives (its first part is
        there), then wait for the answer: (status, payload, body size); None when the call
        was refused here (413, the budget, a poison request) or its client left, after the
        worker was told to drop the body. Bytes past the ``reserved`` ones (at admission) are
        reserved as they come, and released with the answer."""
        group, service, endpoint, info = call
        budget = self.budget
        size = len(first)
        extra = 0  # reserved here, past the bytes reserved at admission
        hasher = body_hasher(service, endpoint)  # the body is not kept: poison.py needs this
        hasher.update(first)
        sent = False
        try:
            try:
                while not sent:
                    message = await receive()
                    if message["type"] != "http.request":
                        return None  # the client left (or its body stalled: it got a 408)
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > reserved + extra:
                        if size > self.body_limit:
                            replica.abort(request_id)
                            await self._too_large(send, service, endpoint, started, size)
                            return None
                        if not budget.reserve(size - reserved - extra):
                            replica.abort(request_id)
                            await self._over_budget(send, service, endpoint, started, size)
                            return None
                        extra = size - reserved
                    if future.done():  # answered before the end (a stopping worker), or gone
                        return self._early(future, size)
                    hasher.update(chunk)
                    last = not message.get("more_body", False)
                    if last:
                        digested = Digested(size, hasher.hexdigest())
                        poison = self.poison
                        if poison.holding and (held := poison.refusal(service, endpoint, digested)):
                            replica.abort(request_id)
                            await self._refuse_poison(send, service, endpoint, started, held, size)
                            return None
                    await replica.send_chunk(request_id, chunk, last)
                    sent = last
            except ReplicaGone as exc:  # the connection closed under the body
                return 503, error_body("worker_crashed", exc.reason), size
            finally:
                if not sent:
                    replica.abort(request_id)
            answer = await self._await(future, replica, group, service, endpoint, digested, info)
            if answer is _NOT_STARTED:  # the body is not kept: it cannot go again
                return 503, _not_started(service, endpoint, 1), size
            return answer[0], answer[1], size
        finally:
            if extra:
                budget.release(extra)

    def _early(self, future: asyncio.Future[Frame], size: int) -> tuple[int, bytes, int]:
        """The answer to a streamed call that came before its body was all sent: the
        worker's (it is stopping), or a 503 when it went away (not the body's doing: the
        worker never had it whole, so poison.py does not count it)."""
        exc = future.exception()
        if isinstance(exc, NotStarted):  # a stopping worker: the body is not kept
            message = "the worker stopped before it took this call; retry shortly"
            return 503, error_body("worker_retiring", message), size
        if isinstance(exc, ReplicaGone):
            return 503, error_body("worker_crashed", exc.reason), size
        if exc is not None:
            raise exc
        frame = future.result()
        return frame.code, frame.payload, size

    async def _too_large(
        self, send: Send, service: str, endpoint: str, started: float, size: int
    ) -> None:
        message = f"the request body exceeds {self.body_limit} bytes"
        if self.body_limit < self.max_body:
            message += " (the host's whole --max-body-buffer)"
        reason = "payload_too_large"
        await self._refuse(send, service, endpoint, started, 413, reason, message, size)

    async def _over_budget(
        self, send: Send, service: str, endpoint: str, started: float, size: int
    ) -> None:
        """503 to a call whose body does not fit in the host's body budget now."""
        self.metrics.rejected.labels(service, "body_buffer").inc()
        budget = self.budget
        message = (
            f"the host holds {format_size(budget.held)} of request bodies; this one "
            f"({format_size(size)}) would pass its limit of {format_size(budget.limit)} "
            "(shipyard serve --max-body-buffer); retry shortly"
        )
        await self._refuse(send, service, endpoint, started, 503, "overloaded", message, size, 1)

    def _count_held(self, held: Held) -> None:
        self.metrics.poison_marked.labels(held.service, held.endpoint).inc()

    def _crashed(
        self, replica: Replica, service: str, endpoint: str, body: Body, exc: ReplicaGone
    ) -> bytes:
        """The answer to a call whose worker went away under it; a crash (not a stop or a
        recycle of the host's own) makes the call a suspect of it (poison.py)."""
        message = exc.reason
        if not replica.stopping and not replica.retiring:
            held = self.poison.crashed(replica.number, service, endpoint, body)
            if held is not None:
                message += (
                    f"; this request was in flight at {held.crashes} worker crashes within "
                    f"{self.poison.window:g} s, so it is refused for {self.poison.hold:g} s "
                    "(503 poison_request)"
                )
        return error_body("worker_crashed", message)

    async def _refuse_poison(
        self, send: Send, service: str, endpoint: str, started: float, held: Held, size: int
    ) -> None:
        now = self.poison.clock()
        self.metrics.poison_requests.labels(service, endpoint).inc()
        self.metrics.rejected.labels(service, "poison_request").inc()  # the UI's error counts
        message, retry = held.message(now), held.retry_after(now)
        await self._refuse(
            send,
            service,
            endpoint,
            started,
            503,
            "poison_request",
            message,
            size,
            retry,
            {"sha256": held.digest},
        )

    async def _refuse(
        self,
        send: Send,
        service: str,
        endpoint: str,
        started: float,
        status: int,
        reason: str,
        message: str,
        bytes_in: int = 0,
        retry_after: int = 0,
        extra: dict[str, str] | None = None,
    ) -> None:
        """Answer a call no worker saw, and log it (rate-limited per reason)."""
        payload = error_body(reason, message, **(extra or {}))
        await _send(send, status, payload, retry_after=retry_after)
        if self.access_log:
            self.refusal_log.refused(
                reason,
                service=service,
                endpoint=endpoint,
                status=status,
                ms=(time.perf_counter() - started) * 1000,
                bytes_in=bytes_in,
                bytes_out=len(payload),
            )


def _timed_out(service: str, endpoint: str, timeout: float) -> bytes:
    message = (
        f"{service}/{endpoint} did not finish within {timeout:g} s; its replica is replaced "
        "(a running call cannot be stopped)"
    )
    return error_body("timeout", message)


def _not_started(service: str, endpoint: str, sends: int) -> bytes:
    message = (
        f"{service}/{endpoint} was not started by {sends} replica(s) in turn (retiring or "
        "stopping) and could not be sent to another; retry shortly"
    )
    return error_body("worker_retiring", message)


def _inline(info: dict[str, Any]) -> bool:
    """Whether an endpoint's calls run inline on its worker's loop (sync, no pool)."""
    return not info.get("async", False) and not info.get("concurrency")


def _waiting(
    replica: Replica, request_id: int, timeout: float, is_async: bool, pooled: bool = False
) -> float | None:
    """A call's timer fired: how much longer it waits, or None when it overran.

    A worker reads calls in order and runs each inline sync one on its event loop,
    answering nothing while it runs. An inline call whose worker answered within its
    timeout is queued, not running that long. A pooled call (``concurrency=N``) is timed by
    its worker from the moment it began in its thread (one waiting for a free thread is
    queued, and only the worker knows when it began): while that worker's loop answers (the
    health pings reach it every second), the call waits for the worker's answer, a 504 if it
    overruns; when the loop is held, by any inline call in flight, the pooled call waits
    for that one too. A call with an older inline call still in flight waits for that one,
    whose own timer tells whether it overran (if the worker is retired for it, its RETIRED
    says whether this call started). Otherwise the call itself overran (or an ``async
    def``, or a pooled call holding the GIL, holds the loop).
    """
    quiet = time.monotonic() - replica.heard
    if pooled:
        if quiet < timeout + ASYNC_GRACE:
            return timeout + ASYNC_GRACE - quiet
        # the loop is held: by an inline call, sent before or after this one (its answer
        # waits for the loop), whose own timer tells; 0 is never a request id, so this
        # looks at every inline call in flight
        return timeout if replica.sync_ahead(0) else None
    if not is_async and quiet < timeout:
        return timeout - quiet
    if replica.sync_ahead(request_id):
        return timeout
    return None


class _RouteEndpoint:
    # an object, not a function: Starlette's Route hands an ASGI app the raw call
    def __init__(self, invoker: Invoker) -> None:
        self.invoker = invoker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope["path_params"]
        await self.invoker(scope, receive, send, params["service"], params["endpoint"])


def _declared_length(scope: Scope) -> int:
    """The body length a request declares (``Content-Length``), -1 when it declares none (a
    chunked body); one that is no number counts as too large."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 1 << 62
    return -1


_JSON_HEADERS = [(b"content-type", JSON.encode())]


async def _send(send: Send, status: int, body: bytes, *, retry_after: int = 0) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["MAX_BODY", "Invoker"]
