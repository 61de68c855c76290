"""examples/docs_qa end to end, over HTTP (run inside a loopback-only network namespace by
tests/examples/test_docs_qa_service.py): the flow indexes a small corpus (an excluded glob
and a sensitive page kept out) and registers docs-index; a real host with the gateway
mounted serves DocsQA; /docs-qa/search answers the issue's shapes with paths relative to
--docs, bad input gets clear 4xx errors, and /docs-qa/ask runs the agent loop through the
gateway's chat route to a fake LLM provider on a loopback port (the one mock: outside the
system), with the key the deployment got through --secret."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "docs_qa"

PAGES = {
    "guide/copying.md": """# Copying files

## shutil.copy

shutil.copy copies a file's content and its permission bits to another file.
Use shutil.copy2 to keep the timestamps as well.

## shutil.copytree

shutil.copytree copies a whole directory tree, recursively.
""",
    "guide/removing.rst": """Removing files
==============

os.remove deletes one file; a directory cannot be removed that way.

Directories
-----------

shutil.rmtree deletes a whole directory tree.
""",
    "notes/tomllib.txt": "The tomllib module parses TOML documents into dictionaries.\n",
    "drafts/unfinished.md": "# Draft\n\nThe zanzibar procedure copies nothing yet.\n",
    "internal/salaries.md": (
        "---\nsensitive: true\n---\n# Salaries\n\nThe zanzibar salary bands are secret.\n"
    ),
    "internal/hidden.md": "---\nindex: false\n---\n# Hidden\n\nZanzibar hidden page.\n",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Provider(BaseHTTPRequestHandler):
    """A fake OpenAI-compatible provider: the first turn searches, the second answers citing
    a passage it got and one that no search returned."""

    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's spelling
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Provider.bodies.append(body)
        if body["messages"][-1]["role"] == "user":
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {
                            "name": "search_docs",
                            "arguments": json.dumps({"query": "copy timestamps"}),
                        },
                    }
                ],
            }
        else:
            message = {"role": "assistant", "content": "Use shutil.copy2 [1][42]."}
        answer = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "fake-llm",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 8, "total_tokens": 58},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Provider.bodies = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _run(env: dict[str, str], *args: str, timeout: float = 240) -> str:
    done = subprocess.run(
        [*args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.timeout(400)
def test_index_deploy_search_and_ask_over_http(tmp_path: Path, provider: str) -> None:
    docs = tmp_path / "docs"
    for path, text in PAGES.items():
        (docs / path).parent.mkdir(parents=True, exist_ok=True)
        (docs / path).write_text(text)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env |= {"SHIPYARD_HOME": str(home)}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    shipyard = [sys.executable, "-m", "shipyard"]

    out = _run(env, sys.executable, str(EXAMPLE / "flow.py"), "run", "--docs", str(docs),
               "--exclude", "drafts/*", "--exclude", "nothing/*")  # fmt: skip
    assert "3 documents" in out, out
    shown = _run(env, *shipyard, "models", "show", "docs-index")
    assert "DocsIndexFlow/1/end" in shown and "corpus=" in shown and "max_tokens=256" in shown
    assert "exclude=drafts/*, exclude=nothing/*" in shown
    card = _run(env, *shipyard, "cards", "get", "DocsIndexFlow/1/end")
    assert "docs-index" in card and "registered unscored" in card  # no question covers PAGES

    key = _run(env, *shipyard, "keys", "create", "--scope", "route:chat").strip().splitlines()[-1]
    (tmp_path / "gateway.yaml").write_text(
        "routes:\n  - name: chat\n    type: chat\n"
        f'    upstream: {{provider: openai, base_url: "{provider}", model: fake-llm}}\n'
        "    retries: 0\n"
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "host.log", "wb")  # noqa: SIM115 - closed in finally
    host = subprocess.Popen(
        [
            *shipyard,
            "serve",
            "--port",
            str(port),
            "--no-scheduler",
            "--gateway-config",
            str(tmp_path / "gateway.yaml"),
        ],  # fmt: skip
        env={**env, "DOCS_QA_KEY": key},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert host.poll() is None, (tmp_path / "host.log").read_text()[-3000:]
                time.sleep(0.1)
        _run(env, *shipyard, "deploy", f"{EXAMPLE / 'service.py'}:DocsQA", "--name", "docs-qa",
             "--url", url, "--env", f"DOCS_QA_GATEWAY={url}",
             "--secret", "DOCS_QA_GATEWAY_KEY=env:DOCS_QA_KEY")  # fmt: skip
        with httpx.Client(base_url=url, timeout=60) as client:
            hits = client.post("/docs-qa/search", json={"query": "copy the permission bits"})
            assert hits.status_code == 200, hits.text
            found = hits.json()
            assert 1 <= len(found) <= 5
            assert set(found[0]) == {"doc", "title", "text", "score"}
            assert found[0]["doc"] == "guide/copying.md"
            assert "permission bits" in found[0]["text"]
            assert all(isinstance(h["score"], float) for h in found)
            one = client.post("/docs-qa/search", json={"query": "tree", "k": 1}).json()
            assert len(one) == 1
            kept_out = client.post("/docs-qa/search", json={"query": "zanzibar", "k": 10}).json()
            assert {h["doc"] for h in kept_out} <= {
                "guide/copying.md",
                "guide/removing.rst",
                "notes/tomllib.txt",
            }

            for body, field in (
                ({"query": "   "}, "query"),
                ({"query": "x", "k": 0}, "k"),
                ({"k": 3}, "query"),
            ):
                bad = client.post("/docs-qa/search", json=body)
                assert bad.status_code == 422, bad.text
                assert field in json.dumps(bad.json()["error"])
            assert client.post("/docs-qa/ask", json={"question": ""}).status_code == 422

            asked = client.post("/docs-qa/ask", json={"question": "How do I keep timestamps?"})
            assert asked.status_code == 200, asked.text
            reply = asked.json()
            assert reply["answer"] == "Use shutil.copy2 [1]."
            assert reply["steps"] == 2 and reply["model"] == "fake-llm"
            assert len(Provider.bodies) == 2
            first = Provider.bodies[0]["messages"][1]["content"]  # passage [1] is named there
            assert [c["doc"] for c in reply["citations"]] == [first.split("[1] ")[1].split()[0]]
            assert reply["citations"][0]["text"] in first
            assert "copy timestamps" not in json.dumps(Provider.bodies[0]["messages"])
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(30)
        log.close()
