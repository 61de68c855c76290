"""The UI's only writes: move a model alias and roll back a deployment, through the admin
API, and pause or resume a schedule; for a key with scope ``admin``.

Routes (relative to the UI)::

    POST /actions/models/{name}/aliases/{alias}     {"version": N}
    POST /actions/deployments/{service}/rollback    {}
    POST /actions/schedules/{name}/pause            {"note": "why"}  (a note is required)
    POST /actions/schedules/{name}/resume           {}

Each one is replayed in-process to the host's admin API (``POST /api/v1/models/{name}/aliases
/{alias}``, ``POST /api/v1/deployments/{service}/rollback``) with the signed-in key as
``Authorization: Bearer``, the browser's Host and Origin and ``application/json``: the admin
API's own checks decide, and its answer (and error) is the action's answer. The UI alone
(``shipyard ui``) has no admin API behind it and is always read-only (403).

The admin API has no schedule routes (``shipyard schedule`` writes the metadata database
directly, as ``shipyard keys`` does): pause and resume make the same checks here, with the
admin API's own :meth:`~shipyard.keys.Guard.check_admin`, then write through
:class:`~shipyard.schedules.store.ScheduleStore`, recording the key's name as who paused.

Cross-site request forgery, in layers:

1. the key lives in an HttpOnly cookie with ``SameSite=Strict`` and the UI's path, so a
   request started by another site never carries it (and scripts cannot read it);
2. actions accept only ``Content-Type: application/json`` (else 415): an HTML form on another
   site cannot send that, and a cross-site ``fetch`` with it needs a CORS preflight that no
   shipyard route answers;
3. an ``Origin`` header is required (browsers send one with every POST) and it, and the Host
   header, must name this server (else 403): :meth:`~shipyard.keys.Guard.check_admin`, the
   same check as the admin API, which also refuses keys without scope ``admin`` (403).

Errors are JSON: ``{"error": {"type", "message"}}`` with the status to match.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipyard.errors import error_response
from shipyard.keys import AuthError, RequestInfo
from shipyard.ui.context import COOKIE, UIContext, UIError

log = logging.getLogger("shipyard.ui")

#: an action's body is a tiny JSON object
MAX_BODY = 4096
#: the longest pause note (a sentence and a ticket number, not a report)
MAX_NOTE = 500


class ActionError(UIError):
    """An action refused before it reached the admin API."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    def response(self) -> Response:
        """The refusal as the action's JSON answer."""
        return error_response(self.status, self.kind, self.message)


async def move_alias(ctx: UIContext, request: Request) -> Response:
    """Point ``alias`` of model ``name`` at ``{"version": N}``."""
    name, alias = request.path_params["name"], request.path_params["alias"]
    path = f"/api/v1/models/{quote(name, safe='')}/aliases/{quote(alias, safe='')}"
    return await _act(ctx, request, path)


async def rollback(ctx: UIContext, request: Request) -> Response:
    """Roll ``service`` back to its previous live version."""
    service = request.path_params["service"]
    return await _act(ctx, request, f"/api/v1/deployments/{quote(service, safe='')}/rollback")


async def pause_schedule(ctx: UIContext, request: Request) -> Response:
    """Pause schedule ``name`` with ``{"note": "why"}`` (required: it is what everyone sees
    on the schedules page until someone resumes it)."""
    try:
        _key, user = _check(ctx, request)
        note = _note(await _body(request))
    except (ActionError, AuthError) as exc:
        return exc.response()
    return await run_in_threadpool(_pause, ctx, request.path_params["name"], note, user)


async def resume_schedule(ctx: UIContext, request: Request) -> Response:
    """Resume schedule ``name``: fire times from now on run (those while paused do not)."""
    try:
        _key, user = _check(ctx, request)
        await _body(request)
    except (ActionError, AuthError) as exc:
        return exc.response()
    return await run_in_threadpool(_resume, ctx, request.path_params["name"], user)


def _note(body: dict[str, Any]) -> str:
    note = body.get("note")
    if not isinstance(note, str) or not note.strip():
        raise ActionError(
            422, "validation_error", "a pause needs a note saying why (the field 'note')"
        )
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ActionError(
            422, "validation_error", f"the note has {len(note)} characters; at most {MAX_NOTE}"
        )
    return note


def _pause(ctx: UIContext, name: str, note: str, user: str) -> Response:
    from shipyard.schedules.errors import ScheduleNotFound
    from shipyard.schedules.store import ScheduleStore

    store = ScheduleStore(ctx.meta)
    try:
        store.pause(name, note, user=user, now=datetime.now(UTC))
    except ScheduleNotFound as exc:
        return error_response(404, "not_found", exc.message)
    return JSONResponse({"schedule": name, "paused": True, "note": note, "paused_by": user})


def _resume(ctx: UIContext, name: str, user: str) -> Response:
    from shipyard.schedules.errors import ScheduleNotFound
    from shipyard.schedules.store import ScheduleStore

    store = ScheduleStore(ctx.meta)
    try:
        was = store.get(name)
        store.resume(name, now=datetime.now(UTC))
    except ScheduleNotFound as exc:
        return error_response(404, "not_found", exc.message)
    log.info("schedule %r resumed by %s (was paused: %s)", name, user, was.paused)
    return JSONResponse({"schedule": name, "paused": False, "was_paused": was.paused})


async def _act(ctx: UIContext, request: Request, path: str) -> Response:
    try:
        key, user = _check(ctx, request)
        body = await _body(request)
    except ActionError as exc:
        return exc.response()
    except AuthError as exc:
        return exc.response()
    return await _forward(ctx, request, path, body, key=key, user=user)


def _check(ctx: UIContext, request: Request) -> tuple[str, str]:
    """The signed-in admin key and who to audit as, or ActionError / AuthError."""
    if ctx.read_only or ctx.live is None:
        raise ActionError(
            403,
            "read_only",
            "this UI is read-only: actions are made in the UI of the host (`shipyard serve`), "
            "signed in with a key with scope 'admin'",
        )
    if "origin" not in request.headers:
        raise ActionError(
            403, "forbidden", "UI actions must come from the UI's own pages (no Origin header)"
        )
    key = request.cookies.get(COOKIE)
    if not key:
        raise ActionError(
            401,
            "unauthorized",
            "sign in with a key with scope 'admin' to make changes "
            "(the admin token in SHIPYARD_HOME/admin.token is one)",
        )
    client = request.scope.get("client")
    info = RequestInfo(
        method=request.method,
        headers={**request.headers, "authorization": f"Bearer {key}"},
        client_host=str(client[0]) if client else None,
        scheme=request.url.scheme,
    )
    record = ctx.guard.check_admin(info)  # Host, Origin, scope admin, application/json
    return key, f"{record.name or record.label} (ui)"


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ActionError(413, "payload_too_large", f"an action's body is at most {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ActionError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ActionError(422, "validation_error", "the request body must be a JSON object")
    return body


async def _forward(
    ctx: UIContext, request: Request, path: str, body: dict[str, Any], *, key: str, user: str
) -> Response:
    """``POST path`` on the host's own app, as the admin API sees any other client."""
    assert ctx.live is not None  # _check made sure
    client = request.scope.get("client")
    transport = httpx.ASGITransport(
        app=ctx.live.admin_app,
        raise_app_exceptions=False,  # the host answers its own errors as JSON
        client=(str(client[0]), int(client[1])) if client else ("127.0.0.1", 0),
    )
    headers = {
        "authorization": f"Bearer {key}",
        "content-type": "application/json",
        "origin": request.headers["origin"],
        "x-shipyard-user": user,
    }
    base = f"{request.url.scheme}://{request.headers.get('host', '127.0.0.1')}"
    async with httpx.AsyncClient(transport=transport, base_url=base) as client_:
        answer = await client_.post(path, content=json.dumps(body), headers=headers)
    try:
        payload = answer.json()
    except ValueError:
        return error_response(answer.status_code, "bad_gateway", answer.text[:500])
    return JSONResponse(payload, answer.status_code)


__all__ = [
    "MAX_BODY",
    "MAX_NOTE",
    "ActionError",
    "move_alias",
    "pause_schedule",
    "resume_schedule",
    "rollback",
]
