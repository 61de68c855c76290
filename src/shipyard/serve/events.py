"""``POST /api/v1/events``: publish an event over HTTP (what ``shipyard event publish`` does).

::

    curl -X POST http://host:8000/api/v1/events \\
      -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
      -d '{"name": "ratings-updated", "payload": {"date": "2026-03-01"}, "id": "feed-0301"}'

It needs a key with scope ``events:publish`` (or ``admin``): such a key can publish events
and nothing else, so all it can do is start the schedules that already wait for an event of
that name. ``id`` (optional) is an idempotency id: the same id again answers 200 with the
event published the first time and publishes nothing.

Answers: 201 ``{"event": {...}, "schedules": [names waiting for it]}``; 200 the same with
``"duplicate": true``; 400 ``invalid_json``; 401 without a valid key; 403 with a key of
another scope (naming ``events:publish``); 413 ``payload_too_large`` over
:data:`~shipyard.store.events.MAX_PAYLOAD_BYTES` (64 KiB) of payload; 415 without
``Content-Type: application/json``; 422 ``validation_error`` naming the field.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard.errors import error_response
from shipyard.store.events import MAX_PAYLOAD_BYTES, EventError, check_event, publish_event

if TYPE_CHECKING:
    from shipyard.keys import Guard
    from shipyard.store.meta import MetaStore

#: the largest request body: the payload's limit plus room for the name and the id
MAX_BODY = MAX_PAYLOAD_BYTES + 4096
_FIELDS = ("name", "payload", "id")


class EventsAPI:
    """The events route of the host's API (see the module docstring)."""

    def __init__(self, *, meta: MetaStore, guard: Guard) -> None:
        self.meta, self.guard = meta, guard

    def routes(self) -> list[Route]:
        return [Route("/events", self.publish, methods=["POST"])]

    async def publish(self, request: Request) -> Response:
        from shipyard.keys import AuthError
        from shipyard.keys.scopes import EVENTS_PUBLISH

        try:
            record = self.guard.check_scope(request, EVENTS_PUBLISH, "publishing events")
        except AuthError as exc:
            return exc.response()
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY:
                return error_response(
                    413,
                    "payload_too_large",
                    f"the request body is over {MAX_BODY} bytes; an event's payload may be at "
                    f"most {MAX_PAYLOAD_BYTES} bytes (64 KiB) of JSON",
                )
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return error_response(400, "invalid_json", f"the request body is not JSON: {exc}")
        if not isinstance(body, dict):
            return error_response(
                422,
                "validation_error",
                'the request body is a JSON object: {"name": ..., "payload": {...}, "id": ...}',
            )
        unknown = sorted(set(body) - set(_FIELDS))
        if unknown:
            return error_response(
                422,
                "validation_error",
                f"unknown field(s) {unknown}: an event has {', '.join(_FIELDS)}",
            )
        if "name" not in body:
            return error_response(422, "validation_error", "field 'name' is required")
        name, payload, key = body["name"], body.get("payload"), body.get("id")
        try:
            check_event(name, payload, key)
        except EventError as exc:
            status = 413 if "over the limit" in str(exc) else 422
            kind = "payload_too_large" if status == 413 else "validation_error"
            return error_response(status, kind, str(exc))
        user = request.headers.get("x-shipyard-user") or record.name or record.label
        event, new = await run_in_threadpool(
            publish_event,
            self.meta,
            name,
            payload,
            source="api",
            user=user,
            idempotency_key=key,
        )
        waiting = await run_in_threadpool(self._waiting, event.name)
        answer: dict[str, Any] = {"event": event.to_json(), "schedules": waiting}
        if not new:
            answer["duplicate"] = True
        return JSONResponse(answer, status_code=201 if new else 200)

    def _waiting(self, name: str) -> list[str]:
        from shipyard.schedules.store import ScheduleStore

        return [
            r.name
            for r in ScheduleStore(self.meta).list()
            if any(t.get("type") == "event" and t.get("name") == name for t in r.current.triggers)
        ]


__all__ = ["MAX_BODY", "EventsAPI"]
