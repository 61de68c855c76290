"""``POST /{service}/{endpoint}``: the host's hot path, as a raw ASGI handler.

It never parses the body (the worker does, with validators built at load): it finds the
service, asks the guard (a cached answer), picks the least-loaded ready replica, forwards the
bytes and sends the worker's answer back. The only work on the front is routing and
bookkeeping, so it is inlined on purpose.

A call is timed here at its endpoint's ``timeout`` when the endpoint is sync (the worker
runs it inline and cannot stop it), and at ``timeout`` + 1 s when it is async (the worker
cancels it itself and answers 504; if it did not, its event loop is held, e.g. by a blocking
call inside ``async def``). A call that overran here gets 504 and its replica is retired
(``Supervisor.retire``); the calls queued on that replica that its worker never started
(``NotStarted``) are sent again to another replica, each timed afresh: they never ran.

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
from shipyard.serve.metrics import HostMetrics
from shipyard.serve.poison import Held, PoisonRequests
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
    ``refusal_log``, rate-limited); requests that crash workers are refused by ``poison``."""

    def __init__(
        self,
        *,
        supervisor: Supervisor,
        guard: Guard,
        metrics: HostMetrics,
        max_body: int = MAX_BODY,
        access_log: bool = False,
        poison: PoisonRequests | None = None,
        refusal_log: RefusalLog | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.guard = guard
        self.metrics = metrics
        self.max_body = max_body
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
        body = await _read_body(scope, receive, self.max_body)
        if body is None:
            message = f"the request body exceeds {self.max_body} bytes"
            await self._refuse(send, service, endpoint, started, 413, "payload_too_large", message)
            return
        poison = self.poison
        if poison.holding and (held := poison.refusal(service, endpoint, body)) is not None:
            await self._refuse_poison(send, service, endpoint, started, held, len(body))
            return
        index, info = found
        sends = 0
        while True:
            replica = group.pick(self.supervisor.max_in_flight)
            if replica is None:
                reason = "overloaded" if group.ready_count else "unavailable"
                self.metrics.rejected.labels(service, reason).inc()
                message = (
                    f"service {service!r} is overloaded; retry shortly"
                    if group.ready_count
                    else f"service {service!r} has no ready replica (restarting); retry shortly"
                )
                await self._refuse(
                    send, service, endpoint, started, 503, reason, message, len(body), 1
                )
                return
            sends += 1
            try:
                future = replica.send(index, body, not info.get("async", False))
            except ReplicaGone as exc:  # gone between pick and send: the call never reached it
                status, payload = 503, error_body("worker_crashed", exc.reason)
                break
            result = await self._await(future, replica, group, service, endpoint, body, info)
            if result is not _NOT_STARTED:
                status, payload = result
                break
            # the worker never ran it (retiring, stopping): another replica may. A streamed
            # body the host did not keep could not be sent again: 503 worker_retiring then
            if sends >= MAX_SENDS:
                message = (
                    f"{service}/{endpoint} was not started by {sends} replicas in turn "
                    "(retiring or stopping); retry shortly"
                )
                status, payload = 503, error_body("worker_retiring", message)
                break
            self.metrics.resent.labels(service).inc()
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
                    f'"bytes_in": {len(body)}, "bytes_out": {len(payload)}}}\n'
                ).encode(),
            )

    async def _await(
        self,
        future: asyncio.Future[Frame],
        replica: Replica,
        group: ServiceGroup,
        service: str,
        endpoint: str,
        body: bytes,
        info: dict[str, Any],
    ) -> tuple[int, bytes]:
        """The worker's answer to a call sent to ``replica``: its frame, a 504 when it
        overran (the replica is retired), a 503 when the worker went away under it, and
        ``_NOT_STARTED`` when the worker did not run it."""
        timeout = info.get("timeout") or 30.0
        is_async = info.get("async", False)
        limit = timeout + ASYNC_GRACE if is_async else timeout
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
                    limit = _waiting(replica, request_id, timeout, is_async)
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
            self.metrics.endpoint(service, endpoint).batch_size.observe(frame.extra)
        if self.poison.suspecting:
            self.poison.answered(service, endpoint, body)
        return frame.code, frame.payload

    def _count_held(self, held: Held) -> None:
        self.metrics.poison_marked.labels(held.service, held.endpoint).inc()

    def _crashed(
        self, replica: Replica, service: str, endpoint: str, body: bytes, exc: ReplicaGone
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


def _waiting(replica: Replica, request_id: int, timeout: float, is_async: bool) -> float | None:
    """A call's timer fired: how much longer it waits, or None when it overran.

    A worker reads calls in order and runs each sync one inline on its event loop,
    answering nothing while it runs. A sync call whose worker answered within its timeout
    is queued, not running that long. A call with an older sync call still in flight
    waits for that one, whose own timer tells whether it overran (if the worker is retired
    for it, its RETIRED says whether this call started). Otherwise the call itself overran
    (or an ``async def`` holds the loop).
    """
    quiet = time.monotonic() - replica.heard
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


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                if int(value) > limit:
                    return None
            except ValueError:
                return None
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_JSON_HEADERS = [(b"content-type", JSON.encode())]


async def _send(send: Send, status: int, body: bytes, *, retry_after: int = 0) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["MAX_BODY", "Invoker"]
