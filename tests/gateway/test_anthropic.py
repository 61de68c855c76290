"""An Anthropic upstream behind the OpenAI chat surface: requests, answers, streams, and the
fields that cannot be translated."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from gateway_fakes import Running, Upstreams, config_text, openai_client

from shipyard.gateway import TranslationError, parse_config
from shipyard.gateway.providers import AnthropicAdapter


def adapter(max_tokens: int | None = None) -> AnthropicAdapter:
    extra = f", max_tokens: {max_tokens}" if max_tokens else ""
    config = parse_config(
        "routes:\n  - {name: c, type: chat, upstream: {provider: anthropic, model: m"
        + extra
        + "}}\n"
    )
    return AnthropicAdapter(config.routes["c"])


def test_a_request_is_translated_field_by_field() -> None:
    body: dict[str, Any] = {
        "model": "c",
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "t2", "content": "windy"},
        ],
        "max_tokens": 10,
        "stop": "END",
        "temperature": 0.5,
        "top_p": 0.9,
        "user": "u1",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "w",
                    "parameters": {"type": "object"},
                },
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    out = adapter().translate(body)
    assert out["system"] == "be brief" and out["model"] == "m" and out["max_tokens"] == 10
    assert out["stop_sequences"] == ["END"] and out["metadata"] == {"user_id": "u1"}
    assert out["messages"][0]["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "AAAA",
    }
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}}
    ]
    results = out["messages"][2]
    assert results["role"] == "user" and [b["tool_use_id"] for b in results["content"]] == [
        "t1",
        "t2",
    ]  # consecutive tool results merged into one user message
    assert out["tools"] == [
        {"name": "weather", "input_schema": {"type": "object"}, "description": "w"}
    ]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logprobs": True}, "logprobs"),
        ({"n": 2}, "n"),
        ({"temperature": 1.5}, "temperature"),
        ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].type",
        ),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
    ],
)
def test_untranslatable_fields_are_refused_by_name(change: dict[str, Any], param: str) -> None:
    body = {"model": "c", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5, **change}
    with pytest.raises(TranslationError) as refused:
        adapter().translate(body)
    assert refused.value.param == param and param in refused.value.message


def test_max_tokens_comes_from_the_request_or_the_route() -> None:
    body = {"model": "c", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(TranslationError) as refused:
        adapter().translate(body)
    assert refused.value.param == "max_tokens"
    assert adapter(max_tokens=77).translate(body)["max_tokens"] == 77


@pytest.fixture
def gw(ups: Upstreams, serve_gateway: Callable[..., Running]) -> Running:
    return serve_gateway(config_text(ups))


def test_chat_and_tools_through_the_official_client(gw: Running, ups: Upstreams) -> None:
    with openai_client(gw) as c:
        reply = c.chat.completions.create(
            model="claude",
            messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "hello"}],
        )
        assert reply.choices[0].message.content == "claude:hello"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage is not None
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 4)
        tools = c.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[{"type": "function", "function": {"name": "weather", "parameters": {}}}],
        )
        call = tools.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert tools.choices[0].finish_reason == "tool_calls"
        assert call.function.name == "weather"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
        stream = c.chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == "claude!"
        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
        with pytest.raises(openai.BadRequestError) as refused:
            c.chat.completions.create(
                model="claude", messages=[{"role": "user", "content": "x"}], presence_penalty=1.0
            )
        assert "presence_penalty" in refused.value.message
    sent = json.loads(ups.rec_anthropic.requests[0]["body"])
    assert sent["system"] == "s" and sent["max_tokens"] == 64 and sent["model"] == "claude-test"
    headers = ups.rec_anthropic.requests[0]["headers"]
    assert headers["anthropic-version"] == "2023-06-01" and "authorization" not in headers
