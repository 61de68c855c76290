"""Anthropic's Messages API behind the OpenAI chat surface.

Requests: ``system``/``developer`` messages become ``system``; user, assistant and ``tool``
messages become content blocks (text, images as data: or http(s) URLs, ``tool_calls`` as
``tool_use``, tool results as ``tool_result``; consecutive messages of one role are merged);
``max_tokens`` (or ``max_completion_tokens``, else the route's ``upstream.max_tokens``, else
400) is required; ``stop`` -> ``stop_sequences``; ``temperature`` (0-1 only), ``top_p``;
``tools``/``tool_choice``/``parallel_tool_calls`` -> Anthropic tools; ``user`` ->
``metadata.user_id``; ``n`` must be 1; ``stream_options.include_usage`` is honoured. Any other
field is a 400 naming it: nothing is dropped silently.

Responses: text blocks -> ``choices[0].message.content``, ``tool_use`` -> ``tool_calls``,
``stop_reason`` -> ``finish_reason``, ``usage.input_tokens/output_tokens`` ->
``prompt_tokens/completion_tokens``; stream events -> ``chat.completion.chunk`` events ending
with ``data: [DONE]``; error bodies -> OpenAI's error shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from shipyard.gateway.errors import TranslationError, openai_error_body
from shipyard.gateway.providers.base import Adapter, Call, Usage
from shipyard.gateway.upstream_http import Request

FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "temperature",
        "top_p",
        "stream",
        "stream_options",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "n",
    }
)


def _bad(param: str, why: str) -> TranslationError:
    return TranslationError(
        f"`{param}` cannot be sent to this route's Anthropic upstream: {why}", param=param
    )


class AnthropicAdapter(Adapter):
    """Anthropic's ``POST {base_url}/messages``."""

    def headers(self, call: Call, extra: Any = None) -> dict[str, str]:
        upstream = self.route.upstream
        headers = {
            **{k: v for k, v in call.headers.items() if k != "openai-beta"},
            "content-type": "application/json",
            "accept": "text/event-stream" if call.stream else "application/json",
            "anthropic-version": upstream.anthropic_version,
        }
        if upstream.api_key:
            headers["x-api-key"] = upstream.api_key
        return headers

    def request(self, call: Call) -> Request:
        return self.post_json("/messages", self.translate(call.payload), call)

    def translate(self, body: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI chat request as a Messages API request (TranslationError if impossible)."""
        for name in body:
            if name not in _HANDLED:
                raise _bad(name, "Anthropic's Messages API has no equivalent")
        out: dict[str, Any] = {"model": self.route.upstream.model}
        system, messages = _messages(body.get("messages"))
        if system:
            out["system"] = system
        out["messages"] = messages
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = self.route.upstream.max_tokens
        if max_tokens is None:
            raise TranslationError(
                "this route's Anthropic upstream needs `max_tokens`: send it, or set "
                "`upstream.max_tokens` in the route",
                param="max_tokens",
            )
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _bad("max_tokens", f"must be a positive integer, got {max_tokens!r}")
        out["max_tokens"] = max_tokens
        stop = body.get("stop")
        if stop is not None:
            stops = [stop] if isinstance(stop, str) else stop
            if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
                raise _bad("stop", "must be a string or a list of strings")
            out["stop_sequences"] = stops
        temperature = body.get("temperature")
        if temperature is not None:
            if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
                raise _bad("temperature", f"Anthropic accepts 0 to 1, got {temperature!r}")
            out["temperature"] = temperature
        if body.get("top_p") is not None:
            out["top_p"] = body["top_p"]
        if body.get("n", 1) != 1:
            raise _bad("n", "Anthropic returns one choice per request")
        if body.get("user") is not None:
            out["metadata"] = {"user_id": str(body["user"])}
        if body.get("stream"):
            out["stream"] = True
        if body.get("tools"):
            out["tools"] = [_tool(t, i) for i, t in enumerate(body["tools"])]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
        return out

    def body(self, data: bytes) -> tuple[bytes, Usage]:
        message = json.loads(data)
        usage = Usage()
        usage.take(message.get("usage"), "input_tokens", "output_tokens")
        text = "".join(b.get("text", "") for b in message["content"] if b.get("type") == "text")
        calls = [
            {
                "id": b.get("id"),
                "type": "function",
                "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input", {}))},
            }
            for b in message["content"]
            if b.get("type") == "tool_use"
        ]
        reply: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            reply["tool_calls"] = calls
        result = {
            "id": message.get("id"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": message.get("model") or self.route.upstream.model,
            "choices": [
                {
                    "index": 0,
                    "message": reply,
                    "finish_reason": FINISH.get(message.get("stop_reason") or "", "stop"),
                    "logprobs": None,
                }
            ],
            "usage": _usage(usage),
        }
        return json.dumps(result).encode(), usage

    def error_body(self, status: int, data: bytes) -> bytes:
        try:
            error = json.loads(data)["error"]
            kind, message = str(error.get("type")), str(error.get("message"))
        except (ValueError, KeyError, TypeError, AttributeError):
            kind, message = "upstream_error", f"the Anthropic upstream answered {status}"
        return openai_error_body(status, message, type=kind)

    async def stream(
        self, call: Call, chunks: AsyncIterator[bytes], usage: Usage
    ) -> AsyncIterator[bytes]:
        state = _StreamState(self.route.upstream.model or "", usage)
        options = call.payload.get("stream_options")
        state.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        buffer = b""
        async for chunk in chunks:
            buffer += chunk.replace(b"\r\n", b"\n")
            *events, buffer = buffer.split(b"\n\n")
            out = b"".join(state.event(e) for e in events)
            if out:
                yield out
            if state.done:
                return
        if buffer.strip():
            out = state.event(buffer)
            if out:
                yield out
        if not state.done:
            yield state.finish()


class _StreamState:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` events out."""

    def __init__(self, model: str, usage: Usage) -> None:
        self.model, self.usage = model, usage
        self.id = "chatcmpl-anthropic"
        self.created = int(time.time())
        self.include_usage = False
        self.tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self.done = False

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        event = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + json.dumps(event).encode() + b"\n\n"

    def event(self, raw: bytes) -> bytes:
        data = b"".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        if not data:
            return b""
        try:
            event = json.loads(data)
        except ValueError:
            return b""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message", {})
            self.id = message.get("id") or self.id
            self.model = message.get("model") or self.model
            self.usage.take(message.get("usage"), "input_tokens", "output_tokens")
            return self.chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = event.get("content_block", {})
            if block.get("type") == "tool_use":
                index = self.tools.setdefault(event.get("index", 0), len(self.tools))
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return self.chunk({"tool_calls": [call]})
            if block.get("type") == "text" and block.get("text"):
                return self.chunk({"content": block["text"]})
            return b""
        if kind == "content_block_delta":
            delta = event.get("delta", {})
            if delta.get("type") == "text_delta":
                return self.chunk({"content": delta.get("text", "")})
            if delta.get("type") == "input_json_delta":
                index = self.tools.get(event.get("index", 0), 0)
                args = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return self.chunk({"tool_calls": [args]})
            return b""
        if kind == "message_delta":
            self.usage.take(event.get("usage"), "input_tokens", "output_tokens")
            reason = (event.get("delta") or {}).get("stop_reason") or ""
            return self.chunk({}, FINISH.get(reason, "stop"))
        if kind == "message_stop":
            return self.finish()
        if kind == "error":
            error = event.get("error") or {}
            self.done = True
            body = openai_error_body(
                500, str(error.get("message")), type=str(error.get("type") or "upstream_error")
            )
            return b"data: " + body + b"\n\n"
        return b""  # ping, content_block_stop

    def finish(self) -> bytes:
        self.done = True
        out = b""
        if self.include_usage:
            event = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": _usage(self.usage),
            }
            out = b"data: " + json.dumps(event).encode() + b"\n\n"
        return out + b"data: [DONE]\n\n"


def _usage(usage: Usage) -> dict[str, int]:
    tokens_in, tokens_out = usage.tokens_in or 0, usage.tokens_out or 0
    return {
        "prompt_tokens": tokens_in,
        "completion_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _bad(f"{param}[{j}]", "only text parts are allowed here")
            parts.append(str(part.get("text", "")))
        return "\n".join(parts)
    raise _bad(param, "must be a string or a list of text parts")


def _blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(param, "must be a string or a list of content parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{param}[{j}].image_url"))
        else:
            raise _bad(f"{param}[{j}].type", f"content part type {kind!r} is not translated")
    return blocks


def _image(value: Any, param: str) -> dict[str, Any]:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise _bad(param, "needs a `url`")
    if url.startswith("data:"):
        head, _, data = url[5:].partition(",")
        media, _, encoding = head.partition(";")
        if encoding != "base64" or not data:
            raise _bad(param, "a data: URL must be base64")
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _bad(param, "must be a data: or http(s) URL")


def _messages(value: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(value, list) or not value:
        raise TranslationError("`messages` must be a non-empty list", param="messages")
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise TranslationError(f"`{param}` must be an object", param=param)
        role = message.get("role")
        allowed = {"role", "content"}
        if role in ("system", "developer"):
            system.append(_text(message.get("content"), f"{param}.content"))
            blocks: list[dict[str, Any]] = []
        elif role == "user":
            blocks = _blocks(message.get("content"), f"{param}.content")
        elif role == "assistant":
            allowed.add("tool_calls")
            blocks = _blocks(message.get("content"), f"{param}.content")
            for j, call in enumerate(message.get("tool_calls") or []):
                blocks.append(_tool_use(call, f"{param}.tool_calls[{j}]"))
        elif role == "tool":
            allowed.add("tool_call_id")
            content = message.get("content")
            result = content if isinstance(content, str) else _text(content, f"{param}.content")
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": str(message.get("tool_call_id")),
                    "content": result,
                }
            ]
            role = "user"
        else:
            raise _bad(f"{param}.role", f"role {role!r} is not translated")
        for name in message:
            if name not in allowed:
                raise _bad(f"{param}.{name}", "Anthropic messages have no such field")
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return "\n\n".join(system), out


def _tool_use(call: Any, param: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise _bad(param, "a tool call needs `function`")
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        raise _bad(f"{param}.function.arguments", "must be a JSON object") from None
    return {
        "type": "tool_use",
        "id": call.get("id"),
        "name": function.get("name"),
        "input": arguments,
    }


def _tool(tool: Any, i: int) -> dict[str, Any]:
    param = f"tools[{i}]"
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise _bad(param, "only tools of type `function` are translated")
    function = tool.get("function") or {}
    for name in function:
        if name not in ("name", "description", "parameters", "strict"):
            raise _bad(f"{param}.function.{name}", "Anthropic tools have no such field")
    out = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is None:
        return None
    if choice is None or choice == "auto":
        out: dict[str, Any] = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise _bad("tool_choice", f"{choice!r} is not translated")
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


__all__ = ["FINISH", "AnthropicAdapter"]
