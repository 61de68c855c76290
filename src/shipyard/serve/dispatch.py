"""From request bytes to response bytes: the one dispatch path of the worker and of tests.

``EndpointTable.load(ServiceClass, name)`` reads the class, builds every validator,
serializer and batcher once, instantiates the class and calls ``load()``. Then
``table.submit(index, body, done)`` handles one request and calls ``done(Reply)``:

* a sync endpoint runs inline, and ``done`` is called before ``submit`` returns;
* a sync endpoint with ``concurrency=N`` runs in its own pool of N threads (parsing,
  the call and serializing, all in the thread: one hop, and the loop stays free);
* an async endpoint runs as a task, cancelled when it overruns the endpoint's ``timeout``
  (504 ``timeout``: the worker itself stays);
* a batch endpoint validates the request, queues its items in the endpoint's ``Batcher``
  (an async batch call that overruns is cancelled too: each of its requests gets the 504).

An inline sync endpoint is not timed here: a thread cannot be stopped, so the host times
it and retires the worker whose call overran (``supervisor.py``). A pooled call is timed
here, from the moment it began in its thread (a call waiting for a free thread is queued,
not overrunning, and only the worker knows when it began): one that overruns is answered
504 with ``OVERRAN`` (protocol.py), and the host retires the worker. Its thread runs on;
its result is dropped. A pooled call records when it began, then asks ``may_begin``: a
call the worker may no longer start is answered ``NOT_RUN`` without running (the worker
sends REFUSED, the host sends it elsewhere), as is one still queued when the pool is
closed (:meth:`EndpointTable.close`).

User code never reaches the client: an exception becomes a 500 ``internal_error`` with an
``error_id``, and the traceback goes to stderr as one JSON line with that id. Except the
exceptions that are the endpoint's own answer (``shipyard.HTTPError``, Starlette's and
FastAPI's ``HTTPException``; see ``answers.py``): those are sent with their status, and
logged (with an error id) only when the status is 5xx.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from prometheus_client import Counter

from shipyard.errors import HTTPError, error_body, new_error_id
from shipyard.names import name_from
from shipyard.serve.answers import EndpointError, as_http_error
from shipyard.serve.batching import Batcher, BatchSizeMismatch, BatchTimedOut
from shipyard.serve.protocol import OVERRAN
from shipyard.serve.schemas import EndpointSchema, build_openapi
from shipyard.serve.service import (
    EndpointSpec,
    Service,
    ServiceDefinitionError,
    collect_endpoints,
)

__all__ = [
    "NOT_RUN",
    "EndpointRuntime",
    "EndpointTable",
    "Reply",
    "default_service_name",
    "log_event",
    "new_error_id",
]

#: the 500 of an endpoint that raised, formatted with the service name and the error id
INTERNAL_MESSAGE = (
    "the endpoint raised; see `shipyard service logs {service} --error-id {error_id}`"
)

#: in a worker, prometheus_client's multiprocess files (the host's /metrics adds them up)
BATCH_EXTRA_CALLS = Counter(
    "shipyard_batch_extra_calls",
    "Calls of a batch endpoint run again to tell a failed batch's bad requests apart",
    ["service", "endpoint"],
)


class Reply(NamedTuple):
    """A response: HTTP status, JSON body, and the size of the batch it ran in (0: none)."""

    status: int
    body: bytes
    batch_size: int = 0


#: the answer to a call the worker did not run and never will (it is retiring or stopping):
#: the worker sends REFUSED, and the host may send the call to another replica
NOT_RUN = Reply(0, b"")


class _PooledCall:
    """One call of a pooled endpoint: when it began in its thread (time.monotonic()),
    whether its thread is done with it, and whether it was answered (by its end, or by the
    504 of its overrun: only the first)."""

    __slots__ = ("answered", "began", "done", "ended", "timer")

    def __init__(self, done: Callable[[Reply], None]) -> None:
        self.done = done
        self.began: float | None = None
        self.ended = False
        self.answered = False
        self.timer: asyncio.TimerHandle | None = None


def log_event(event: str, **fields: Any) -> None:
    """One structured JSON line on stderr (the supervisor keeps the worker's log)."""
    record = {"ts": round(time.time(), 6), "event": event, **fields}
    sys.stderr.write(json.dumps(record, default=repr) + "\n")
    sys.stderr.flush()


class EndpointRuntime:
    """One endpoint, ready to serve: its schema, the bound method, and its batcher."""

    def __init__(self, index: int, service: str, schema: EndpointSchema, bound: Any) -> None:
        self.index = index
        self.service = service
        self.schema = schema
        self.spec: EndpointSpec = schema.spec
        self.name = self.spec.name
        self.function: Callable[..., Any] = bound
        concurrency = self.spec.options.concurrency
        self.inline = not self.spec.is_async and not self.spec.options.batch and not concurrency
        #: the endpoint's own threads (``concurrency=N``), created with it at load
        self.pool: ThreadPoolExecutor | None = None
        if concurrency:
            prefix = f"{self.spec.method}-{index}"
            self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix=prefix)
        #: asked by a pooled call as it begins: False when the worker is retiring or stopping
        self.may_begin: Callable[[], bool] = lambda: True
        #: pooled calls begun and not ended (their threads), overrun ones included; a set,
        #: whose add and discard are atomic under the GIL (a counter's += is not)
        self.running: set[_PooledCall] = set()
        self.batcher: Batcher | None = None
        if self.spec.options.batch:
            self.batcher = Batcher(
                bound,
                is_async=self.spec.is_async,
                max_batch_size=self.spec.options.max_batch_size,
                max_wait_ms=self.spec.options.max_wait_ms,
                on_error=self._batch_error,
                name=self.spec.method,
                on_retried=self._batch_retried,
                timeout=self.spec.options.timeout if self.spec.is_async else None,
            )
            self._list_param = self.spec.parameters[0].name

    def submit(self, body: bytes, done: Callable[[Reply], None]) -> None:
        """Handle one request; ``done`` gets the reply (at once for a sync endpoint)."""
        if self.inline:
            done(self.call_sync(body))
        elif self.pool is not None:
            self._submit_pooled(self.pool, body, done)
        elif self.batcher is not None:
            try:
                kwargs = self.schema.parse(body)
            except EndpointError as exc:
                done(Reply(exc.status, exc.to_body()))
                return
            future = self.batcher.submit(kwargs[self._list_param])
            future.add_done_callback(lambda f: done(self._batch_reply(f, kwargs)))
        else:
            task = asyncio.get_running_loop().create_task(self._call_timed(body))
            task.add_done_callback(lambda t: done(_task_reply(t)))

    def _submit_pooled(
        self, pool: ThreadPoolExecutor, body: bytes, done: Callable[[Reply], None]
    ) -> None:
        loop = asyncio.get_running_loop()
        call = _PooledCall(done)
        try:
            future = loop.run_in_executor(pool, self._run_pooled, call, body)
        except RuntimeError:  # the pool is closed: the worker is stopping
            done(NOT_RUN)
            return
        future.add_done_callback(lambda f: self._pooled_done(call, f))
        call.timer = loop.call_later(self.spec.options.timeout, self._check_overrun, call)

    def _run_pooled(self, call: _PooledCall, body: bytes) -> Reply:
        """In a pool thread: first the record that the call began, then the look at
        ``may_begin`` (worker.py's order: a call runs only if it looked before the flag)."""
        call.began = time.monotonic()
        if not self.may_begin():
            return NOT_RUN
        self.running.add(call)
        try:
            return self.call_sync(body)
        finally:
            call.ended = True
            self.running.discard(call)

    def _pooled_done(self, call: _PooledCall, future: asyncio.Future[Reply]) -> None:
        if call.timer is not None:
            call.timer.cancel()
        if call.answered:
            return  # answered 504 when it overran: its late result is dropped
        call.answered = True
        if future.cancelled():  # still queued when the pool was closed: it never ran
            call.done(NOT_RUN)
            return
        error = future.exception()
        call.done(future.result() if error is None else self._internal_error(error))

    def _check_overrun(self, call: _PooledCall) -> None:
        """The call's timer (on the loop): 504 if it has run ``timeout`` since it began; a
        call still queued, or begun later, is looked at again when it could have overrun."""
        if call.answered or call.ended:  # ended: its answer waits for the loop (held by an
            return  # inline call, say), and comes next; the thread is free, nothing to retire
        timeout = self.spec.options.timeout
        loop = asyncio.get_running_loop()
        began = call.began
        left = timeout if began is None else began + timeout - time.monotonic()
        if left > 0:
            call.timer = loop.call_later(left, self._check_overrun, call)
            return
        call.answered = True
        message = (
            f"{self.service}/{self.name} did not finish within {timeout:g} s; its replica is "
            "replaced (a running call cannot be stopped)"
        )
        log_event("pooled_call_overran", service=self.service, endpoint=self.name)
        call.done(Reply(504, error_body("timeout", message), OVERRAN))

    async def _call_timed(self, body: bytes) -> Reply:
        """:meth:`call_async`, cancelled when it overruns the endpoint's timeout."""
        timeout = self.spec.options.timeout
        try:
            async with asyncio.timeout(timeout):
                return await self.call_async(body)
        except TimeoutError:  # the endpoint's own TimeoutError is a 500 of call_async
            return Reply(504, self.overran())

    def overran(self) -> bytes:
        """The 504 body of a call cancelled because it overran the endpoint's timeout."""
        message = (
            f"{self.service}/{self.name} did not finish within {self.spec.options.timeout:g} s; "
            "it was cancelled"
        )
        return error_body("timeout", message)

    def call_sync(self, body: bytes) -> Reply:
        try:
            arguments = self.schema.parse(body)
            value = self.function(**arguments)
        except Exception as exc:
            return self._error_reply(exc)
        return self.finish(value, request=arguments)

    async def call_async(self, body: bytes) -> Reply:
        try:
            arguments = self.schema.parse(body)
            value = await self.function(**arguments)
        except Exception as exc:
            return self._error_reply(exc)
        return self.finish(value, request=arguments)

    def finish(
        self, value: Any, batch_size: int = 0, request: dict[str, Any] | None = None
    ) -> Reply:
        """Serialize a return value, checking its annotation and the contract (given the
        call's arguments, ``request``, when it takes them)."""
        try:
            data, value = self.schema.dump(value)
        except EndpointError as exc:
            exc.error_id = new_error_id()
            self._log("response_validation", exc.error_id, exc.message)
            return Reply(500, exc.to_body(), batch_size)
        contract = self.schema.contract
        if contract is not None:
            problem = contract.violation(value, request)
            if problem is not None:
                error_id = new_error_id()
                message = f"{self.spec.method}() returned a value that breaks its contract: "
                message += problem
                self._log("contract_violation", error_id, message)
                body = error_body("contract_violation", message, error_id=error_id)
                return Reply(500, body, batch_size)
        return Reply(200, data, batch_size)

    def _batch_reply(
        self, future: asyncio.Future[tuple[list[Any], int]], request: dict[str, Any]
    ) -> Reply:
        error = future.exception()
        if error is not None:
            if isinstance(error, HTTPError):  # made by _batch_error: logged if need be
                return Reply(error.status, error.to_body())
            return self._internal_error(error)
        results, size = future.result()
        return self.finish(results, size, request)

    def _batch_error(self, exc: BaseException) -> BaseException:
        answer = as_http_error(exc)
        if answer is not None:
            return self._answer(answer, exc)  # as a plain endpoint's would be
        error_id = new_error_id()
        if isinstance(exc, BatchTimedOut):
            self._log("batch_timed_out", error_id, str(exc))
            return EndpointError(504, "timeout", str(exc), error_id=error_id)
        if isinstance(exc, BatchSizeMismatch):
            self._log("batch_size_mismatch", error_id, str(exc))
            return EndpointError(500, "batch_size_mismatch", str(exc), error_id=error_id)
        self._log_exception(exc, error_id)
        message = INTERNAL_MESSAGE.format(service=self.service, error_id=error_id)
        return EndpointError(500, "internal_error", message, error_id=error_id)

    def _batch_retried(self, requests: int, extra_calls: int) -> None:
        BATCH_EXTRA_CALLS.labels(self.service, self.name).inc(extra_calls)
        log_event(
            "batch_retried",
            service=self.service,
            endpoint=self.name,
            requests=requests,
            extra_calls=extra_calls,
        )

    def _error_reply(self, exc: Exception) -> Reply:
        """The reply to an exception from parsing or from the endpoint."""
        answer = as_http_error(exc)
        if answer is None:
            return self._internal_error(exc)
        answer = self._answer(answer, exc)
        return Reply(answer.status, answer.to_body())

    def _answer(self, answer: HTTPError, exc: BaseException) -> HTTPError:
        """An error answer as sent: a 5xx one gets an error id, logged with the traceback
        (it was raised on purpose, but something on the server side is wrong)."""
        if answer.status < 500 or answer.error_id is not None:
            return answer
        error_id = new_error_id()
        log_event(
            "endpoint_http_error",
            service=self.service,
            endpoint=self.name,
            error_id=error_id,
            status=answer.status,
            error=f"{type(exc).__name__}: {answer.message}",
            traceback="".join(traceback.format_exception(exc)),
        )
        return HTTPError(
            answer.status, answer.message, answer.field, type=answer.type, error_id=error_id
        )

    def _internal_error(self, exc: BaseException) -> Reply:
        error_id = new_error_id()
        self._log_exception(exc, error_id)
        message = INTERNAL_MESSAGE.format(service=self.service, error_id=error_id)
        return Reply(500, error_body("internal_error", message, error_id=error_id))

    def _log_exception(self, exc: BaseException, error_id: str) -> None:
        log_event(
            "endpoint_error",
            service=self.service,
            endpoint=self.name,
            error_id=error_id,
            error=f"{type(exc).__name__}: {exc}",
            traceback="".join(traceback.format_exception(exc)),
        )

    def _log(self, event: str, error_id: str, message: str) -> None:
        log_event(event, service=self.service, endpoint=self.name, error_id=error_id, error=message)


class EndpointTable:
    """The endpoints of one loaded service, by index (the frame's code) and by name."""

    def __init__(
        self,
        service: str,
        instance: Service,
        endpoints: list[EndpointRuntime],
        openapi: dict[str, Any],
    ) -> None:
        self.service = service
        self.instance = instance
        self.endpoints = endpoints
        self.by_name = {endpoint.name: endpoint for endpoint in endpoints}
        self.openapi = openapi
        #: what deploy shows the user about this load (a feature set not the model's)
        self.warnings: list[str] = []

    @classmethod
    def load(cls, service_class: type[Service], service: str) -> EndpointTable:
        """Check the class, build validators, then instantiate it and call ``load()``.

        Definition errors (``ServiceDefinitionError``) come before ``load()`` runs.
        """
        specs = collect_endpoints(service_class)
        schemas = [EndpointSchema.build(spec, service_class.__qualname__) for spec in specs]
        description = (service_class.__doc__ or "").strip()
        openapi = build_openapi(service, description, schemas)
        instance = service_class()
        instance.load()
        warnings = _check_features(instance, service_class.__qualname__, service)
        endpoints = [
            EndpointRuntime(i, service, schema, getattr(instance, schema.spec.method))
            for i, schema in enumerate(schemas)
        ]
        table = cls(service, instance, endpoints, openapi)
        table.warnings = warnings
        return table

    def submit(self, index: int, body: bytes, done: Callable[[Reply], None]) -> None:
        """Handle a request for endpoint number ``index``; ``done`` gets the reply."""
        if not 0 <= index < len(self.endpoints):
            message = f"service {self.service!r} has no endpoint number {index}"
            done(Reply(404, error_body("unknown_endpoint", message)))
            return
        self.endpoints[index].submit(body, done)

    def close(self) -> None:
        """Close the endpoints' pools: calls still queued in them are answered ``NOT_RUN``
        (they never ran); calls running go on (the worker waits for them as it drains)."""
        for endpoint in self.endpoints:
            if endpoint.pool is not None:
                endpoint.pool.shutdown(wait=False, cancel_futures=True)

    def running(self) -> int:
        """Pooled calls running in their threads now (overrun ones included)."""
        return sum(len(endpoint.running) for endpoint in self.endpoints)

    def ready_info(self, pid: int, models: dict[str, str]) -> dict[str, Any]:
        """The READY payload (see protocol.py)."""
        return {
            "service": self.service,
            "pid": pid,
            "endpoints": [
                {
                    "name": endpoint.name,
                    "batch": endpoint.spec.options.batch,
                    "timeout": endpoint.spec.options.timeout,
                    # the worker cancels an async call that overruns; a sync one the host times
                    "async": endpoint.spec.is_async,
                    # threads of a pooled sync endpoint (None: inline); the worker times these
                    "concurrency": endpoint.spec.options.concurrency,
                }
                for endpoint in self.endpoints
            ],
            "openapi": self.openapi,
            "models": models,
            "warnings": self.warnings,
        }


def _check_features(instance: Service, qualname: str, service: str) -> list[str]:
    """Bind the service's serving logs to its name, and check the feature sets it holds
    against the models ``load()`` resolved (only when its code imported shipyard.features:
    a service without features pays nothing)."""
    if sys.modules.get("shipyard.features") is None:
        return []
    from shipyard.features import FeatureSetMismatch
    from shipyard.features.checks import bind_serving_logs, check_service

    bind_serving_logs(instance, service)
    models = sys.modules.get("shipyard.registry.model")
    if models is None:
        return []
    try:
        return check_service(instance, dict(getattr(models, "records", {})))
    except FeatureSetMismatch as exc:
        raise ServiceDefinitionError(str(exc), service=qualname) from None


def _task_reply(task: asyncio.Task[Reply]) -> Reply:
    if task.cancelled():
        return Reply(503, error_body("cancelled", "the request was cancelled; retry it"))
    return task.result()


def default_service_name(service_class: type) -> str:
    """``RankerService`` -> ``ranker-service``: a service name for tests and local runs."""
    return name_from(service_class.__name__)
