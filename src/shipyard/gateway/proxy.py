"""The request path: key check, admission, upstream attempts with retries and fallbacks,
and the answer — whole, or streamed chunk by chunk without buffering.

For each request: read the body (at most ``max_body`` bytes), check the key for the route
(:meth:`Guard.check_route`: ``route:<name>``, ``route:*`` or ``admin``, even on loopback),
ask :meth:`Admission.admit`, then try the route and its fallbacks in order, each with its
``retries``. Retried: connect errors, timeouts, 429 and 5xx (for ``service``/``http``
routes 429, 502, 503, 504 only: a 500 there is the service's own answer). Once a route
answers anything else, that answer is final. All failed: 504 if the last failure was a
timeout, 429 if it was the upstream's rate limit, else 502, with each route's reason.

Upstream answers: a 401/403 becomes our own 502 (the upstream's body could describe the
gateway's credential); a 3xx becomes 502 (redirects are never followed, and the Location
is not passed back); another 4xx is passed on in the surface's error shape with every
configured credential scrubbed out; a 2xx body (or stream) is passed on. Only allow-listed
request headers go upstream (:data:`FORWARDED`); the caller's Authorization never does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shipyard.gateway.config import Route, RouteType
from shipyard.gateway.errors import (
    RequestError,
    gateway_error,
    openai_error,
    openai_error_body,
)
from shipyard.gateway.providers import Adapter, Call, Usage
from shipyard.gateway.routes import RouteTable
from shipyard.keys import AuthError, KeyRecord

if TYPE_CHECKING:
    from shipyard.gateway.app import Gateway

log = logging.getLogger("shipyard.gateway")
access = logging.getLogger("shipyard.gateway.access")

#: request headers passed upstream; a route's ``forward_headers`` adds to these
FORWARDED = (
    "content-type",
    "accept",
    "openai-beta",
    "anthropic-beta",
    "x-request-id",
    "idempotency-key",
)
#: response headers passed back on ``/gateway`` routes
RETURNED = (
    "content-type",
    "content-encoding",
    "cache-control",
    "retry-after",
    "x-request-id",
    "etag",
    "last-modified",
    "content-language",
    "content-disposition",
)
MAX_BODY = 32 << 20
_LLM_RETRY = frozenset({429, 500, 502, 503, 504})
_PLAIN_RETRY = frozenset({429, 502, 503, 504})
_PATHS = {
    RouteType.CHAT: "/v1/chat/completions",
    RouteType.COMPLETIONS: "/v1/completions",
    RouteType.EMBEDDINGS: "/v1/embeddings",
}


class Refused(Exception):
    """Answer now with this status and message (rendered in the surface's error shape)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.param, self.code, self.headers = param, code, headers


@dataclass
class Exchange:
    """One request's bookkeeping, from arrival to the last byte."""

    surface: str  # "openai" or "gateway"
    started: float = field(default_factory=time.perf_counter)
    key: KeyRecord | None = None
    route: Route | None = None  # the route that answered (or the one asked for)
    table: RouteTable | None = None
    usage: Usage = field(default_factory=Usage)
    streamed: bool = False
    attempts: int = 0


class Proxy:
    """The gateway's request handlers; ``gateway`` holds the live table and the services."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    # -- the OpenAI surface ---------------------------------------------------------------------
    def openai_endpoint(self, kind: RouteType) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await self.openai(request, kind)

        return endpoint

    async def openai(self, request: Request, kind: RouteType) -> Response:
        ex = Exchange("openai")
        table = self.gw.table
        table.acquire()
        ex.table = table
        try:
            return await self._openai(request, kind, ex, table)
        except Refused as exc:
            return self._finish(ex, _refusal(ex.surface, exc))

    async def _openai(
        self, request: Request, kind: RouteType, ex: Exchange, table: RouteTable
    ) -> Response:
        body = await _read_body(request, self.gw.max_body)
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise Refused(400, f"the request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise Refused(400, "the request body must be a JSON object")
        name = payload.get("model")
        if not isinstance(name, str) or not name:
            raise Refused(
                400, "`model` is required: it names the gateway route to use", param="model"
            )
        ex.key = self._check_key(request, name)
        route = table.routes.get(name)
        if route is None or not route.type.openai:
            raise Refused(
                404,
                f"the model {name!r} does not exist or you do not have access "
                "to it (GET /v1/models lists the routes your key may use)",
                param="model",
                code="model_not_found",
            )
        ex.route = route
        if route.type is not kind:
            raise Refused(
                400,
                f"route {name!r} serves {route.type}: call POST {_PATHS[route.type]}",
                param="model",
            )
        stream = payload.get("stream") is True
        if stream and kind is RouteType.EMBEDDINGS:
            raise Refused(400, "embeddings cannot be streamed", param="stream")
        self._admit(ex, route, _estimate(body, payload))
        call = Call(kind, payload=payload, headers=_forwarded(request, route))
        response, adapter = await self._send(ex, table, route, call)
        return await self._answer(ex, adapter, response, call, stream)

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``: the OpenAI-surface routes the caller's key may use."""
        table = self.gw.table
        allowed, failure = [], None
        for route in table.routes.values():
            if not route.type.openai:
                continue
            try:
                self.gw.guard.check_route(request, route.name)
            except AuthError as exc:
                if exc.status == 401:
                    return _refusal("openai", _auth_refusal(exc))
                failure = exc
                continue
            allowed.append(
                {"id": route.name, "object": "model", "created": 0, "owned_by": "shipyard"}
            )
        if not allowed and failure is None:
            try:  # no OpenAI routes at all: still only answer to a valid key
                self.gw.guard.check_route(request, "*")
            except AuthError as exc:
                if exc.status == 401:
                    return _refusal("openai", _auth_refusal(exc))
        return Response(
            json.dumps({"object": "list", "data": allowed}), media_type="application/json"
        )

    # -- /gateway/{route}/... ----------------------------------------------------------------------
    async def passthrough(self, request: Request) -> Response:
        """``/gateway/{route}/{path}``: a ``service`` or ``http`` route."""
        ex = Exchange("gateway")
        table = self.gw.table
        table.acquire()
        ex.table = table
        try:
            return await self._passthrough(request, ex, table)
        except Refused as exc:
            return self._finish(ex, _refusal(ex.surface, exc))

    async def _passthrough(self, request: Request, ex: Exchange, table: RouteTable) -> Response:
        name = request.path_params["route"]
        ex.key = self._check_key(request, name)
        route = table.routes.get(name)
        if route is None:
            raise Refused(404, f"no gateway route named {name!r}", kind="not_found")
        ex.route = route
        if route.type.openai:
            raise Refused(
                404,
                f"route {name!r} is a {route.type} route: call "
                f'POST {_PATHS[route.type]} with "model": "{name}"',
                kind="not_found",
            )
        sub = _sub_path(request.scope, name)
        body = await _read_body(request, self.gw.max_body)
        self._admit(ex, route, 0)
        call = Call(
            route.type,
            method=request.method,
            body=body,
            path=sub,
            query=request.scope.get("query_string", b""),
            headers=_forwarded(request, route),
        )
        response, adapter = await self._send(ex, table, route, call)
        return await self._answer(ex, adapter, response, call, True)

    # -- pieces ----------------------------------------------------------------------------------
    def _check_key(self, request: Request, route: str) -> KeyRecord:
        try:
            return self.gw.guard.check_route(request, route)
        except AuthError as exc:
            raise _auth_refusal(exc) from None

    def _admit(self, ex: Exchange, route: Route, estimated: int) -> None:
        assert ex.key is not None
        denied = self.gw.admission.admit(ex.key, route, estimated_tokens=estimated)
        if denied is not None:
            headers = (
                {"retry-after": str(max(1, round(denied.retry_after)))}
                if denied.retry_after is not None
                else None
            )
            raise Refused(
                denied.status, denied.message, kind=denied.kind, code=denied.kind, headers=headers
            )

    async def _send(
        self, ex: Exchange, table: RouteTable, route: Route, call: Call
    ) -> tuple[httpx.Response, Adapter]:
        """Try ``route`` then its fallbacks; the first final answer, or Refused(502/504/429)."""
        failures: list[str] = []
        last = 502
        metrics = self.gw.metrics
        for target in table.chains[route.name]:
            adapter = table.adapters[target.name]
            try:
                request = adapter.request(call)
            except RequestError as exc:
                if target is route:
                    raise Refused(
                        exc.status,
                        exc.message,
                        param=exc.param,
                        kind=None if ex.surface == "openai" else "bad_request",
                    ) from None
                failures.append(f"fallback {target.name!r} cannot take this request: {exc.message}")
                continue
            pool = table.pools[target.upstream.origin]
            retry = _LLM_RETRY if target.type.openai else _PLAIN_RETRY
            delay = 0.0
            for attempt in range(target.retries.attempts + 1):
                if attempt:
                    await asyncio.sleep(_backoff(target, attempt, delay))
                ex.attempts += 1
                delay = 0.0
                try:
                    response = await pool.transport().handle_async_request(request)
                    response.request = request
                except httpx.TimeoutException:
                    metrics.attempts.labels(target.name, "timeout").inc()
                    last, why = 504, f"no answer within {target.timeout:g} s"
                except httpx.TransportError as exc:
                    metrics.attempts.labels(target.name, "unreachable").inc()
                    last, why = 502, f"unreachable ({type(exc).__name__})"
                else:
                    if response.status_code not in retry:
                        metrics.attempts.labels(target.name, "answered").inc()
                        ex.route = target
                        return response, adapter
                    metrics.attempts.labels(target.name, str(response.status_code)).inc()
                    delay = _retry_after(response)
                    with _quietly():
                        await asyncio.wait_for(response.aread(), 5)
                    await response.aclose()
                    last = 429 if response.status_code == 429 else 502
                    why = f"answered HTTP {response.status_code}"
            tries = target.retries.attempts + 1
            what = "route" if target is route else "fallback"
            failures.append(
                f"{what} {target.name!r}: {why} ({tries} attempt{'s' if tries > 1 else ''})"
            )
        verb = {504: "timed out", 429: "is rate-limited"}.get(last, "failed")
        raise Refused(
            last,
            f"the upstream of route {route.name!r} {verb}: " + "; ".join(failures),
            kind={504: "timeout", 429: "rate_limit_exceeded"}.get(last, "bad_gateway"),
        )

    async def _answer(
        self, ex: Exchange, adapter: Adapter, response: httpx.Response, call: Call, stream: bool
    ) -> Response:
        status = response.status_code
        route = adapter.route
        if status >= 500 and not route.type.openai:
            return await self._relay(ex, adapter, response, call, status)  # the service's own
        if status in (401, 403) or 300 <= status < 400 or status >= 500:
            await response.aclose()
            if status >= 500:
                message = f"the upstream of route {route.name!r} failed (HTTP {status})"
            elif status >= 400:
                log.error(
                    "route %r: the upstream refused the gateway's credentials (HTTP %s)",
                    route.name,
                    status,
                )
                message = (
                    f"the upstream of route {route.name!r} refused the gateway's "
                    f"credentials (HTTP {status}); the gateway's operator must fix the "
                    "route's api_key"
                )
            else:
                message = (
                    f"the upstream of route {route.name!r} answered a redirect (HTTP "
                    f"{status}); the gateway never follows redirects"
                )
            raise Refused(502, message, kind="bad_gateway")
        if status >= 400:
            data = await _read_limited(response, self.gw.max_body)
            await response.aclose()
            body = adapter.error_body(status, data) if ex.surface == "openai" else data
            body = self._scrub(body)
            headers = {"content-type": response.headers.get("content-type", "application/json")}
            return self._finish(ex, Response(body, status, headers=headers))
        if stream and status == 200 or not route.type.openai:
            return await self._relay(ex, adapter, response, call, status)
        try:
            data = await _read_limited(response, self.gw.max_body)
        except httpx.TimeoutException:
            raise Refused(
                504,
                f"the upstream of route {route.name!r} stopped answering "
                f"within {route.timeout:g} s",
                kind="timeout",
            ) from None
        except httpx.TransportError as exc:
            raise Refused(
                502,
                f"the upstream of route {route.name!r} broke the connection ({type(exc).__name__})",
                kind="bad_gateway",
            ) from None
        finally:
            await response.aclose()
        try:
            body, ex.usage = adapter.body(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Refused(
                502,
                f"the upstream of route {route.name!r} sent a body that is "
                "not what its provider sends",
                kind="bad_gateway",
            ) from None
        return self._finish(ex, Response(body, status, media_type="application/json"))

    async def _relay(
        self, ex: Exchange, adapter: Adapter, response: httpx.Response, call: Call, status: int
    ) -> Response:
        """Stream the upstream's body to the caller as it arrives."""
        ex.streamed = True
        if adapter.route.type.openai:
            headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        else:
            headers = {k: response.headers[k] for k in RETURNED if k in response.headers}
        chunks = adapter.stream(call, response.aiter_raw(), ex.usage)
        return Streamed(self, ex, response, chunks, status, headers)

    def _finish(self, ex: Exchange, response: Response, status: int | None = None) -> Response:
        """Account a request whose answer is complete (or about to be streamed out)."""
        self.account(ex, status if status is not None else response.status_code)
        return response

    def account(self, ex: Exchange, status: int) -> None:
        elapsed = time.perf_counter() - ex.started
        name = ex.route.name if ex.route is not None else "-"
        table, ex.table = ex.table, None
        if table is not None:
            table.release()
        if ex.route is not None:  # requests, tokens, latency: counted by the usage accounting
            try:
                self.gw.admission.record(
                    ex.key,
                    ex.route,
                    status=status,
                    latency_ms=elapsed * 1000,
                    tokens_in=ex.usage.tokens_in,
                    tokens_out=ex.usage.tokens_out,
                    streamed=ex.streamed,
                )
            except Exception:  # accounting must never break an answer
                log.exception("recording usage failed for route %r", name)
        if access.isEnabledFor(logging.INFO):
            access.info(
                json.dumps(
                    {
                        "route": name,
                        "status": status,
                        "ms": round(elapsed * 1000, 3),
                        "key": ex.key.label if ex.key is not None else None,
                        "streamed": ex.streamed,
                        "attempts": ex.attempts,
                        "tokens_in": ex.usage.tokens_in,
                        "tokens_out": ex.usage.tokens_out,
                    }
                )
            )

    def _scrub(self, body: bytes) -> bytes:
        for secret in self.gw.secrets():
            if secret in body:
                body = body.replace(secret, b"[redacted]")
        return body


class Streamed(Response):
    """A response whose body is sent chunk by chunk as the upstream produces it.

    The upstream response, the table lease and the accounting are closed in ``finally``,
    also when the caller goes away (its disconnect stops the upstream read).
    """

    def __init__(
        self,
        proxy: Proxy,
        ex: Exchange,
        upstream: httpx.Response,
        chunks: AsyncIterator[bytes],
        status: int,
        headers: dict[str, str],
    ) -> None:
        super().__init__(None, status, headers=headers)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.proxy, self.ex, self.upstream, self.chunks = proxy, ex, upstream, chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        status = self.status_code
        try:
            await send(
                {"type": "http.response.start", "status": status, "headers": self.raw_headers}
            )
            try:
                async for chunk in self.chunks:
                    if gone.is_set():
                        status = 499
                        break
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                status = 504 if isinstance(exc, httpx.TimeoutException) else 502
                route = self.ex.route.name if self.ex.route else "?"
                message = (
                    f"the upstream of route {route!r} broke off the answer ({type(exc).__name__})"
                )
                log.warning("%s", message)
                if self.ex.surface == "openai" and self.upstream.status_code == 200:
                    error = openai_error_body(status, message)
                    await send(
                        {
                            "type": "http.response.body",
                            "body": b"data: " + error + b"\n\n",
                            "more_body": True,
                        }
                    )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with _quietly():
                    await aclose()
            await self.upstream.aclose()
            self.proxy.account(self.ex, status)


# -- helpers ---------------------------------------------------------------------------------------
class _quietly:
    """Suppress (and debug-log) errors while cleaning up after a failed attempt."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            log.debug("ignored while cleaning up: %r", exc)
            return True
        return False


def _refusal(surface: str, exc: Refused) -> Response:
    if surface == "openai":
        kind = exc.kind if exc.kind and exc.status not in (502, 504) else None
        return openai_error(
            exc.status, exc.message, type=kind, param=exc.param, code=exc.code, headers=exc.headers
        )
    extra = {"field": exc.param} if exc.param else {}
    kind = exc.kind or {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }.get(exc.status, "error")
    return gateway_error(exc.status, kind, exc.message, headers=exc.headers, **extra)


def _auth_refusal(exc: AuthError) -> Refused:
    code = "invalid_api_key" if exc.status == 401 else "permission_denied"
    return Refused(exc.status, exc.message, kind=exc.type, code=code, headers=exc.headers or None)


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise Refused(413, f"the request body exceeds {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"the request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > limit:
            raise httpx.RemoteProtocolError("the upstream body is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _forwarded(request: Request, route: Route) -> dict[str, str]:
    headers = request.headers
    out = {name: headers[name] for name in FORWARDED if name in headers}
    for name in route.forward_headers:
        if name in headers:
            out[name] = headers[name]
    return out


def _sub_path(scope: Scope, route: str) -> str:
    """The still-encoded path after ``/gateway/{route}/`` (raw, so %2f stays visible)."""
    raw = scope.get("raw_path") or scope["path"].encode()
    text = raw.decode("latin-1")
    marker = f"/gateway/{route}"
    at = text.find(marker)
    rest = text[at + len(marker) :] if at >= 0 else ""
    return rest[1:] if rest.startswith("/") else rest


def _estimate(body: bytes, payload: dict[str, Any]) -> int:
    """Tokens a request may cost, before the upstream says: ~4 bytes a token in, plus the
    completion budget asked for (no tokenizer: none is downloaded at run time)."""
    budget = payload.get("max_completion_tokens", payload.get("max_tokens"))
    extra = budget if isinstance(budget, int) and not isinstance(budget, bool) else 0
    return len(body) // 4 + max(0, extra)


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def _backoff(route: Route, attempt: int, retry_after: float) -> float:
    """Exponential backoff with jitter (half fixed, half random), at least the upstream's
    Retry-After when that fits under ``max_backoff``."""
    r = route.retries
    base = min(r.max_backoff, r.backoff * 2.0 ** (attempt - 1))
    delay = base / 2 + random.uniform(0, base / 2)
    if retry_after <= r.max_backoff:
        delay = max(delay, retry_after)
    return delay


__all__ = ["FORWARDED", "MAX_BODY", "RETURNED", "Proxy", "Refused", "Streamed"]
