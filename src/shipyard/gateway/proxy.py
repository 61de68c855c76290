"""The request path: key check, admission, upstream attempts with retries and fallbacks,
and the answer — whole, or streamed chunk by chunk without buffering.

For each request: read the body (at most ``max_body`` bytes), check the key for the route
(:meth:`Guard.check_route`: ``route:<name>``, ``route:*`` or ``admin``, even on loopback),
ask :meth:`Admission.admit`, then try the route and its fallbacks in order, each with its
``retries`` (:func:`shipyard.gateway.attempts.send`).

Upstream answers: a 401/403 becomes our own 502 (the upstream's body could describe the
gateway's credential); a 3xx becomes 502 (redirects are never followed, and the Location
is not passed back); a 5xx becomes 502 on the OpenAI surface; a 429 is retried and, if it
stays, answered 429 with the upstream's ``Retry-After`` (:mod:`shipyard.gateway.attempts`);
another 4xx is passed on in the surface's error shape; a 2xx body (or stream), and a
``service``/``http`` route's 5xx, are passed on. Whatever is passed on — headers, bodies,
streams — is first decompressed if the upstream compressed it
(:mod:`shipyard.gateway.decoding`) and scrubbed of every configured credential
(:mod:`shipyard.gateway.scrubbing`). Only allow-listed request headers go upstream
(:data:`FORWARDED`); the caller's Authorization never does.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from shipyard.gateway import attempts
from shipyard.gateway.cooldown import Cooldowns
from shipyard.gateway.decoding import decoded
from shipyard.gateway.exchange import Exchange, Refused, auth_refusal, refusal
from shipyard.gateway.hooks import Admission
from shipyard.gateway.metrics import GatewayMetrics
from shipyard.gateway.model import Route, RouteType
from shipyard.gateway.providers import Adapter, Call
from shipyard.gateway.routes import RouteTable
from shipyard.gateway.scrubbing import Scrubber
from shipyard.gateway.streamed import Streamed
from shipyard.gateway.transport import UpstreamResponse
from shipyard.gateway.upstream_http import UpstreamError, UpstreamTimeout
from shipyard.keys import AuthError, Guard, KeyRecord

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
_PATHS = {
    RouteType.CHAT: "/v1/chat/completions",
    RouteType.COMPLETIONS: "/v1/completions",
    RouteType.EMBEDDINGS: "/v1/embeddings",
}


class Proxy:
    """The gateway's request handlers.

    ``table`` returns the live route table (a reload swaps it), ``scrubber`` the
    :class:`Scrubber` of every upstream credential loaded so far (everything passed on goes
    through it); ``guard`` checks keys, ``admission`` applies limits and budgets and
    accounts usage, ``metrics`` counts upstream attempts and admission failures. Requests
    are read up to ``max_body`` bytes.
    """

    def __init__(
        self,
        *,
        guard: Guard,
        admission: Admission,
        metrics: GatewayMetrics,
        table: Callable[[], RouteTable],
        scrubber: Callable[[], Scrubber],
        max_body: int = MAX_BODY,
    ) -> None:
        self.guard = guard
        self.admission = admission
        self.metrics = metrics
        self.table = table
        self.scrubber = scrubber
        self.max_body = max_body
        #: routes whose upstream answered 429, resting until the wait it asked for is over
        self.cooldowns = Cooldowns()

    # -- the OpenAI surface ---------------------------------------------------------------------
    def openai_endpoint(self, kind: RouteType) -> Callable[[Request], Any]:
        """A Starlette endpoint for :meth:`openai` on routes of type ``kind``."""

        async def endpoint(request: Request) -> Response:
            return await self.openai(request, kind)

        return endpoint

    async def openai(self, request: Request, kind: RouteType) -> Response:
        """``POST /v1/chat/completions`` (``completions``, ``embeddings``): the route is the
        body's ``model``."""
        ex = Exchange("openai")
        table = self.table()
        table.acquire()
        ex.table = table
        try:
            return await self._openai(request, kind, ex, table)
        except Refused as exc:
            return self._finish(ex, refusal(ex.surface, exc))

    async def _openai(
        self, request: Request, kind: RouteType, ex: Exchange, table: RouteTable
    ) -> Response:
        body = await _read_body(request, self.max_body)
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
        response, adapter = await attempts.send(
            ex,
            table,
            route,
            call,
            metrics=self.metrics,
            max_body=self.max_body,
            cooldowns=self.cooldowns,
        )
        return await self._answer(ex, adapter, response, call, stream)

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``: the OpenAI-surface routes the caller's key may use."""
        table = self.table()
        allowed, failure = [], None
        for route in table.routes.values():
            if not route.type.openai:
                continue
            try:
                self.guard.check_route(request, route.name)
            except AuthError as exc:
                if exc.status == 401:
                    return refusal("openai", auth_refusal(exc))
                failure = exc
                continue
            allowed.append(
                {"id": route.name, "object": "model", "created": 0, "owned_by": "shipyard"}
            )
        if not allowed and failure is None:
            try:  # no OpenAI routes at all: still only answer to a valid key
                self.guard.check_route(request, "*")
            except AuthError as exc:
                if exc.status == 401:
                    return refusal("openai", auth_refusal(exc))
        return Response(
            json.dumps({"object": "list", "data": allowed}), media_type="application/json"
        )

    # -- /gateway/{route}/... ----------------------------------------------------------------------
    async def passthrough(self, request: Request) -> Response:
        """``/gateway/{route}/{path}``: a ``service`` or ``http`` route."""
        ex = Exchange("gateway")
        table = self.table()
        table.acquire()
        ex.table = table
        try:
            return await self._passthrough(request, ex, table)
        except Refused as exc:
            return self._finish(ex, refusal(ex.surface, exc))

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
        body = await _read_body(request, self.max_body)
        self._admit(ex, route, 0)
        call = Call(
            route.type,
            method=request.method,
            body=body,
            path=sub,
            query=request.scope.get("query_string", b""),
            headers=_forwarded(request, route),
        )
        response, adapter = await attempts.send(
            ex,
            table,
            route,
            call,
            metrics=self.metrics,
            max_body=self.max_body,
            cooldowns=self.cooldowns,
        )
        return await self._answer(ex, adapter, response, call, True)

    # -- pieces ----------------------------------------------------------------------------------
    def _check_key(self, request: Request, route: str) -> KeyRecord:
        try:
            return self.guard.check_route(request, route)
        except AuthError as exc:
            raise auth_refusal(exc) from None

    def _admit(self, ex: Exchange, route: Route, estimated: int) -> None:
        assert ex.key is not None
        try:
            denied = self.admission.admit(ex.key, route, estimated_tokens=estimated)
        except Exception:
            # fail open: limits and budgets control cost, and a bug in them must not take
            # every route down; shipyard_gateway_admission_failures_total is what to alert on
            self.metrics.admission_failed(route.name)
            log.exception("admission failed for route %r: the request goes through", route.name)
            return
        if denied is not None:
            headers = (
                {"retry-after": str(max(1, round(denied.retry_after)))}
                if denied.retry_after is not None
                else None
            )
            raise Refused(
                denied.status, denied.message, kind=denied.kind, code=denied.kind, headers=headers
            )

    async def _answer(
        self, ex: Exchange, adapter: Adapter, response: UpstreamResponse, call: Call, stream: bool
    ) -> Response:
        status = response.status_code
        route = adapter.route
        relayed = status >= 500 and not route.type.openai  # the service's own answer
        if not relayed and (status in (401, 403) or 300 <= status < 400 or status >= 500):
            await response.aclose()
            raise _replaced(route, status)
        scrubber = self.scrubber()
        try:
            response = decoded(response, route.upstream.origin)
        except UpstreamError as exc:
            await response.aclose()
            raise Refused(
                502, f"route {route.name!r}: {scrubber.text(str(exc))}", kind="bad_gateway"
            ) from None
        if relayed:
            return await self._relay(ex, adapter, response, call, status, scrubber)
        if status >= 400:
            data = await self._read(route, response)
            body = adapter.error_body(status, data) if ex.surface == "openai" else data
            kind = scrubber.text(response.headers.get("content-type", "application/json"))
            answer = Response(scrubber.scrub(body), status, headers={"content-type": kind})
            return self._finish(ex, answer)
        if stream and status == 200 or not route.type.openai:
            return await self._relay(ex, adapter, response, call, status, scrubber)
        data = await self._read(route, response)
        try:
            body, ex.usage = adapter.body(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Refused(
                502,
                f"the upstream of route {route.name!r} sent a body that is "
                "not what its provider sends",
                kind="bad_gateway",
            ) from None
        answer = Response(scrubber.scrub(body), status, media_type="application/json")
        return self._finish(ex, answer)

    async def _read(self, route: Route, response: UpstreamResponse) -> bytes:
        """The upstream's whole body (then closed); 504/502 if it stops or breaks."""
        try:
            return await response.read(self.max_body)
        except UpstreamTimeout:
            raise Refused(
                504,
                f"the upstream of route {route.name!r} stopped answering "
                f"within {route.timeout:g} s",
                kind="timeout",
            ) from None
        except UpstreamError as exc:
            raise Refused(
                502,
                f"the upstream of route {route.name!r} broke the connection ({type(exc).__name__})",
                kind="bad_gateway",
            ) from None
        finally:
            await response.aclose()

    async def _relay(
        self,
        ex: Exchange,
        adapter: Adapter,
        response: UpstreamResponse,
        call: Call,
        status: int,
        scrubber: Scrubber,
    ) -> Response:
        """Stream the upstream's body to the caller as it arrives, scrubbed."""
        ex.streamed = True
        if adapter.route.type.openai:
            headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        else:
            upstream = response.headers
            headers = {k: scrubber.text(upstream[k]) for k in RETURNED if k in upstream}
        chunks = scrubber.stream(adapter.stream(call, response.stream(), ex.usage))
        return Streamed(self.account, ex, response, chunks, status, headers)

    def _finish(self, ex: Exchange, response: Response, status: int | None = None) -> Response:
        """Account a request whose answer is complete (or about to be streamed out)."""
        self.account(ex, status if status is not None else response.status_code)
        return response

    def account(self, ex: Exchange, status: int) -> None:
        """Release the request's table, record its usage and write its access-log line."""
        elapsed = time.perf_counter() - ex.started
        name = ex.route.name if ex.route is not None else "-"
        table, ex.table = ex.table, None
        if table is not None:
            table.release()
        if ex.route is not None:  # requests, tokens, latency: counted by the usage accounting
            try:
                self.admission.record(
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


# -- helpers ---------------------------------------------------------------------------------------
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


def _forwarded(request: Request, route: Route) -> dict[str, str]:
    """The caller's allow-listed headers (the first of repeated ones), in one pass."""
    wanted = _allowed(route.forward_headers)
    out: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:  # names come lower-cased (ASGI)
        name = raw_name.decode("latin-1")
        if name in wanted and name not in out:
            out[name] = raw_value.decode("latin-1")
    return out


@functools.lru_cache(maxsize=64)
def _allowed(extra: tuple[str, ...]) -> frozenset[str]:
    return frozenset(FORWARDED).union(extra)


def _sub_path(scope: Scope, route: str) -> str:
    """The still-encoded path after ``/gateway/{route}/`` (raw, so %2f stays visible)."""
    raw = scope.get("raw_path") or scope["path"].encode()
    text = raw.decode("latin-1")
    marker = f"/gateway/{route}"
    at = text.find(marker)
    rest = text[at + len(marker) :] if at >= 0 else ""
    return rest[1:] if rest.startswith("/") else rest


def _replaced(route: Route, status: int) -> Refused:
    """Our 502 for an upstream's 401/403 (its body could describe the gateway's credential),
    3xx (redirects are never followed) or, on the OpenAI surface, 5xx."""
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
    return Refused(502, message, kind="bad_gateway")


def _estimate(body: bytes, payload: dict[str, Any]) -> int:
    """Tokens a request may cost, before the upstream says: ~4 bytes a token in, plus the
    completion budget asked for (no tokenizer: none is downloaded at run time)."""
    budget = payload.get("max_completion_tokens", payload.get("max_tokens"))
    extra = budget if isinstance(budget, int) and not isinstance(budget, bool) else 0
    return len(body) // 4 + max(0, extra)


__all__ = ["FORWARDED", "MAX_BODY", "RETURNED", "Proxy", "Refused", "Streamed"]
