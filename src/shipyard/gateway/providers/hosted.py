"""Chat services hosted by shipyard behind the OpenAI chat surface (a ``chat`` route with
``provider: service``).

Requests: the caller's body goes to ``POST {host_url}/{service}/{endpoint}`` as one JSON
object, without ``model`` (the route's name, nothing the service knows), ``stream`` and
``stream_options``: hosted services answer one JSON body per call, they do not stream yet.
The service takes the OpenAI fields it declares as parameters; one it does not declare is
its 422, passed on as a 422 naming the field.

Responses: a body that is a chat completion (``choices``) passes with ``id``, ``object``,
``created`` and ``model`` filled in when missing; a body with a ``message`` (or only a
``content`` string) is wrapped into one. ``usage`` is read for limits and budgets. With
``stream: true`` the whole answer is sent as **one** ``chat.completion.chunk`` (the full
message as its delta, with its ``finish_reason``), then a usage chunk if
``stream_options.include_usage`` asked for it, then ``data: [DONE]``. The host's error
bodies (``{"error": {"type", "message", "field"}}``) become OpenAI's shape, ``field`` as
``param``; 5xx, timeouts and an unreachable host are retried and fall back as for any chat
route.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from shipyard.gateway.errors import openai_error_body
from shipyard.gateway.providers.base import Adapter, Call, Usage
from shipyard.gateway.upstream_http import Request

#: an endpoint's name, as a shipyard service names them
ENDPOINT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
#: request fields the gateway keeps to itself
_KEPT = frozenset({"model", "stream", "stream_options"})
#: the largest whole answer a streamed call buffers before it gives up
MAX_ANSWER = 32 << 20


class HostedChatAdapter(Adapter):
    """A chat endpoint of a service on a shipyard host; ``api_key`` (an ``invoke:`` key of
    that host) is sent as ``Authorization: Bearer`` if set."""

    def request(self, call: Call) -> Request:
        payload = {k: v for k, v in call.payload.items() if k not in _KEPT}
        return self.post_json(f"/{self.route.upstream.endpoint}", payload, call)

    def body(self, data: bytes) -> tuple[bytes, Usage]:
        completion, usage = self.completion(data)
        return json.dumps(completion).encode(), usage

    def completion(self, data: bytes) -> tuple[dict[str, Any], Usage]:
        """The service's answer as an OpenAI chat completion (raises ValueError, KeyError or
        TypeError when it is none of the shapes in the module docstring)."""
        answer = json.loads(data)
        if not isinstance(answer, dict):
            raise TypeError(f"a hosted chat service answered {type(answer).__name__}")
        if "choices" in answer:
            choices = answer["choices"]
            if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
                raise TypeError("`choices` is not a list of objects")
            completion = dict(answer)
        else:
            message = answer.get("message")
            if message is None:
                message = {"role": "assistant", "content": answer["content"]}
            if not isinstance(message, dict):
                raise TypeError("`message` is not an object")
            choice = {
                "index": 0,
                "message": message,
                "finish_reason": answer.get("finish_reason") or "stop",
                "logprobs": None,
            }
            completion = {"choices": [choice]}
            if "usage" in answer:
                completion["usage"] = answer["usage"]
        completion.setdefault("id", f"chatcmpl-{uuid.uuid4().hex}")
        completion.setdefault("created", int(time.time()))
        completion.setdefault("model", self.route.upstream.service)
        completion["object"] = "chat.completion"
        usage = Usage()
        usage.take(completion.get("usage"))
        return completion, usage

    async def stream(
        self, call: Call, chunks: AsyncIterator[bytes], usage: Usage
    ) -> AsyncIterator[bytes]:
        data = b""
        async for chunk in chunks:
            data += chunk
            if len(data) > MAX_ANSWER:
                yield _event(openai_error_body(502, "the hosted service's answer is too large"))
                return
        try:
            completion, found = self.completion(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            message = (
                f"the service of route {self.route.name!r} sent a body that is not "
                "a chat completion"
            )
            yield _event(openai_error_body(502, message, type="upstream_error"))
            return
        usage.tokens_in, usage.tokens_out = found.tokens_in, found.tokens_out
        head = {k: completion[k] for k in ("id", "created", "model")}
        out = b""
        for choice in completion["choices"]:
            delta = dict(choice.get("message") or {})
            event = {
                **head,
                "object": "chat.completion.chunk",
                "choices": [
                    {
                        "index": choice.get("index", 0),
                        "delta": delta,
                        "finish_reason": choice.get("finish_reason") or "stop",
                        "logprobs": None,
                    }
                ],
            }
            out += _event(json.dumps(event).encode())
        options = call.payload.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            event = {
                **head,
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": completion.get("usage") or {},
            }
            out += _event(json.dumps(event).encode())
        yield out + b"data: [DONE]\n\n"

    def error_body(self, status: int, data: bytes) -> bytes:
        try:
            error = json.loads(data)["error"]
            message = str(error["message"])
            field = error.get("field")
            kind = error.get("type")
        except (ValueError, KeyError, TypeError, AttributeError):
            message = f"the service of route {self.route.name!r} answered {status}"
            field = kind = None
        return openai_error_body(
            status,
            message,
            param=str(field) if field is not None else None,
            code=str(kind) if kind is not None else None,
        )


def _event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


__all__ = ["ENDPOINT_NAME", "HostedChatAdapter", "MAX_ANSWER"]
