"""The real local model (examples/docs_qa/local_llm.py: SmolLM2-135M-Instruct's GGUF, loaded
by transformers) deployed on a real host and reached through a gateway ``chat`` route with
``provider: service``, inside a loopback-only network namespace this test makes (``unshare
-n``): a hidden download would fail at once instead of hanging. The model loads once and
generates twice (24 tokens at most each): a whole answer to a request that carries tools,
and the same request streamed, which must be one chunk holding the same answer (greedy
decoding is deterministic)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from support.netns import run_in_netns

SCRIPT = Path(__file__).with_name("local_llm_offline.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("local-llm")
    out = run_in_netns(
        f"{sys.executable} {SCRIPT} {work}", timeout=540, env={"PYTHONUNBUFFERED": "1"}
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(600)
def test_the_local_model_answers_through_the_gateway_offline(run: dict[str, Any]) -> None:
    assert run["outside_unreachable"] is True  # the namespace holds: nothing can be downloaded
    assert run["whole"]["status"] == 200, run["whole"]
    answer = run["whole"]["body"]
    assert answer["object"] == "chat.completion" and answer["model"] == "SmolLM2-135M-Instruct"
    (choice,) = answer["choices"]
    assert choice["message"]["role"] == "assistant" and "tool_calls" not in choice["message"]
    text = choice["message"]["content"]
    assert isinstance(text, str) and text.strip()
    assert choice["finish_reason"] in ("stop", "length")
    usage = answer["usage"]
    assert 20 < usage["prompt_tokens"] < 200 and 0 < usage["completion_tokens"] <= 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert (choice["finish_reason"] == "length") == (usage["completion_tokens"] == 24)


@pytest.mark.timeout(600)
def test_a_stream_is_one_chunk_with_the_same_greedy_answer(run: dict[str, Any]) -> None:
    stream = run["stream"]
    assert stream["status"] == 200 and stream["content_type"].startswith("text/event-stream")
    blocks = [b for b in stream["text"].split("\n\n") if b.strip()]
    assert len(blocks) == 2 and blocks[1] == "data: [DONE]", stream["text"]
    chunk = json.loads(blocks[0].removeprefix("data: "))
    assert chunk["object"] == "chat.completion.chunk"
    whole = run["whole"]["body"]["choices"][0]
    assert chunk["choices"][0]["delta"]["content"] == whole["message"]["content"]
    assert chunk["choices"][0]["finish_reason"] == whole["finish_reason"]


@pytest.mark.timeout(600)
def test_the_model_loaded_once_and_no_log_holds_the_host_key(run: dict[str, Any]) -> None:
    assert run["service_log"].count("loaded SmolLM2-135M-Instruct.Q4_1.gguf in") == 1
    assert '"route": "local-chat", "status": 200' in run["host_log"]  # the gateway's access log
    for log in ("host_log", "service_log"):
        assert run["invoke_key"] not in run[log]
