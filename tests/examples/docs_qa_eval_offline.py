"""examples/docs_qa/evaluate.py end to end on a handful of questions: a real index built by the
retrieval core over three documents of the real corpus, the extractive option, and a provider
route of a real gateway (on a loopback port, its key checked, its prices in its file) in front
of a fake LLM provider — the one thing outside the system. Checks the card's numbers against
what the fake was made to do, the generation bound and the choice under two budgets.

Not collected by itself: tests/examples/test_docs_qa_eval_flow.py runs it inside a
loopback-only network namespace, since it loads the embedding model (a hidden download
fails there at once instead of hanging)."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from shipyard.gateway import Gateway
from shipyard.gateway.testing import MockResponse, MockTransport
from shipyard.gateway.upstream_http import Request
from shipyard.keys import Guard, KeyStore
from shipyard.store.meta import MetaStore
from support.servers import missing_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "docs_qa"
#: the reStructuredText sources of Debian's python3.11-doc (scripts/services.sh installs them)
CORPUS = Path(
    os.environ.get("SHIPYARD_TEST_PYTHON_DOCS", "/usr/share/doc/python3.11/html/_sources")
)


def _corpus() -> Path:
    if not (CORPUS / "library" / "functools.rst.txt").is_file():
        missing_server("Python's documentation", f"no python3.11-doc sources at {CORPUS}")
    return CORPUS


DOCS = [
    "library/tomllib.rst.txt",
    "library/heapq.rst.txt",
    "library/zoneinfo.rst.txt",
]
#: the first two are run (the generation bound); heapq is there to be found instead
QUESTION_IDS = ["tomllib-writing", "zoneinfo-fallback", "heap-smallest"]
KEY_ENV = "DOCS_QA_EVAL_TEST_KEY"
CONFIG = """
routes:
  - name: chat
    type: chat
    upstream: {provider: openai, base_url: "http://llm.test/v1", model: tiny}
    retries: 0
    prices: {input_per_1k: 1.0, output_per_1k: 2.0}
"""
USAGE = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
#: 100 tokens in at $1/1k + 10 out at $2/1k, one generation a question, x 1,000 questions
COST_PER_1K = 1000 * (100 * 1.0 + 10 * 2.0) / 1000


@pytest.fixture(scope="module")
def example() -> Iterator[dict[str, Any]]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        yield {
            "questions": importlib.import_module("questions"),
            "evaluate": importlib.import_module("evaluate"),
        }
    finally:
        for name in [
            n
            for n in sys.modules
            if n in ("evaluate", "agent", "questions") or n.startswith("questions.")
        ]:
            del sys.modules[name]
        sys.path.remove(str(EXAMPLE))


_BUILD = """
import shutil, sys
from pathlib import Path
from shipyard.retrieval import Embedder, build_index, chunk_documents, load_documents
corpus, root, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
for doc in sys.argv[4:]:
    (root / doc).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(corpus / doc, root / doc)
embedder = Embedder()
chunks = chunk_documents(load_documents(root), embedder.tokenizer, max_tokens=256)
build_index(chunks, embedder).save(out)
"""


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real retrieval core's index over three documents of the corpus, built in a child
    process: torch loaded in this one would be inherited by the flow's forked tasks, and
    torch's thread pools do not survive a fork (the task crashes with SIGSEGV)."""
    root, out = tmp_path_factory.mktemp("corpus"), tmp_path_factory.mktemp("index")
    subprocess.run(
        [sys.executable, "-c", _BUILD, str(_corpus()), str(root), str(out), *DOCS],
        check=True,
        timeout=300,
    )
    return out


class Provider:
    """The fake LLM provider: it answers a question with its gold answer, citing the first
    passage that holds its gold quote (or [1]); it counts the requests."""

    def __init__(self, questions: list[Any]) -> None:
        self.by_question = {q.question: q for q in questions}
        self.requests = 0

    def __call__(self, request: Request) -> MockResponse:
        self.requests += 1
        body = json.loads(request.body)
        prompt = body["messages"][1]["content"]
        question = self.by_question[prompt.rsplit("Question: ", 1)[1].strip()]
        quote = " ".join(question.gold[0].quote.lower().split())
        number = 1
        for n, text in re.findall(r"^\[(\d+)\] [^\n]*\n(.*?)(?=^\[\d+\] |\Z)", prompt, re.M | re.S):
            if quote in " ".join(text.lower().split()):
                number = int(n)
                break
        message = {"role": "assistant", "content": f"{question.answer} [{number}]"}
        return MockResponse(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "model": "tiny-1",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": USAGE,
            },
        )


class _Server:
    """The gateway under uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@pytest.mark.timeout(360)  # the index, and two tasks loading the model, on a shared machine
def test_the_evaluation_flow_compares_options_and_chooses_within_budget(
    example: dict[str, Any], index_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.cards import get_cards
    from shipyard.testing import run_flow

    qs, evaluate = example["questions"], example["evaluate"]
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_CACHE_URL", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    hand = {q.id: q for q in qs.load_questions(qs.HAND_WRITTEN).questions}
    chosen = [hand[i] for i in QUESTION_IDS]
    questions_file = tmp_path / "few.yaml"
    questions_file.write_text(
        json.dumps({"kind": "hand-written", "questions": [q.to_dict() for q in chosen]})
    )
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG)
    meta = MetaStore.open(f"sqlite:///{tmp_path}/meta.db")
    keys = KeyStore(meta)
    provider = Provider(chosen)
    gateway = Gateway(config, guard=Guard(keys), transport=lambda origin: MockTransport(provider))
    _, key = keys.create("docs-qa-eval", ["route:chat"])
    monkeypatch.setenv(KEY_ENV, key)
    try:
        with _Server(gateway) as url:
            run = run_flow(
                EXAMPLE / "evaluate.py",
                max_workers=1,
                questions=str(questions_file),
                split="all",
                index=str(index_dir),
                routes="chat",
                gateway=url,
                gateway_config=str(config),
                key_env=KEY_ENV,
                max_steps=1,
                max_generations=5,  # 5 // (1 + 1) = 2 questions for every option
                budget=500.0,
            )
    finally:
        keys.close()
        meta.close()
    assert run.successful
    data = run["choose"].task.data
    summaries = {s["option"]: s for s in data.summaries}
    assert set(summaries) == {"extractive", "chat"}
    assert [s["questions"] for s in summaries.values()] == [2, 2]
    assert provider.requests == summaries["chat"]["generations"] == 2  # <= 5 in all
    chat, extractive = summaries["chat"], summaries["extractive"]
    assert chat["answer_f1"] == 1.0  # the fake answered with the gold answers
    assert chat["fallbacks"] == 0 and chat["uncited"] == 0
    # it cited the passage holding the gold quote whenever search found one
    rows = [r for r in data.rows if r["option"] == "chat"]
    assert chat["citation_precision"] == pytest.approx(
        sum(r["citation_precision"] for r in rows) / 2
    )
    assert chat["citation_precision"] == 1.0
    assert chat["cost_per_1k_usd"] == pytest.approx(COST_PER_1K)
    assert extractive["cost_per_1k_usd"] == 0.0 and extractive["generations"] == 0
    assert 0.0 <= extractive["answer_f1"] < 1.0
    for s in (chat, extractive):
        assert s["p50_latency_s"] > 0
    # the best within $500 / 1,000 questions is the provider; within $50 it is extractive
    assert data.choice == "chat" and "Best within $500" in data.why
    assert evaluate.choose(data.summaries, 50.0)[0] == "extractive"
    (html,) = [c.get() for c in get_cards(run["choose"].task)]
    assert "Answer options on 2 hand-written questions (all)" in html
    assert f"<code>{index_dir}</code>, top 5 passages" in html
    for text in ("extractive", "chat", "1.000", f"{COST_PER_1K:.4f}", "Best within $500"):
        assert text in html
