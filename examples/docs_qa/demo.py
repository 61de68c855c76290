"""``make demo-docs-qa``: index a slice of Python's documentation, serve it, search it and ask
it questions; change one file and rebuild (only its chunks are embedded again).

Runs under its own SHIPYARD_HOME (``.demo/docs-qa/``), ends by itself and leaves nothing
running; the last lines say how to bring the host back up. The corpus is Debian's
``python3.11-doc`` (``source scripts/services.sh && python_docs_check`` installs it), eight
pages of it, so the demo takes about two minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # examples/demo_support.py

from demo_support import deployed, post, post_refused, shipyard, step  # noqa: E402

PYTHON_DOCS = Path(os.environ.get("PYTHON_DOCS", "/usr/share/doc/python3.11/html/_sources"))
#: the slice: pages that some of the hand-written questions are about
SLICE = [
    "library/shutil.rst.txt",
    "library/functools.rst.txt",
    "library/os.path.rst.txt",
    "library/heapq.rst.txt",
    "library/tomllib.rst.txt",
    "library/copy.rst.txt",
    "library/glob.rst.txt",
    "library/fnmatch.rst.txt",
    "whatsnew/3.11.rst.txt",  # kept out by --exclude 'whatsnew/*'
]
SENSITIVE = """\
---
title: Salaries 2026
sensitive: true
---
# Salaries 2026

The salary bands for 2026 are confidential: never index this page.
"""
QUESTIONS = [
    "How do I copy a file together with its permission bits?",
    "What does functools.lru_cache do when maxsize is None?",
    "Which module parses TOML files?",
    "How do I get the n smallest items of a list?",
]


def corpus(target: Path) -> Path:
    if not (PYTHON_DOCS / "library" / "json.rst.txt").is_file():
        raise SystemExit(
            f"Python's documentation is not at {PYTHON_DOCS}: install Debian's python3.11-doc "
            "(source scripts/services.sh && python_docs_check), or set PYTHON_DOCS"
        )
    for page in SLICE:
        (target / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PYTHON_DOCS / page, target / page)
    (target / "internal").mkdir(exist_ok=True)
    (target / "internal" / "salaries.md").write_text(SENSITIVE)
    return target


def index(docs: Path) -> None:
    flow = [sys.executable, str(HERE / "flow.py"), "run", "--docs", str(docs)]
    started = time.monotonic()
    subprocess.run([*flow, "--exclude", "whatsnew/*"], check=True)
    print(f"(the flow took {time.monotonic() - started:.0f} s)")


def main() -> int:
    home = Path(os.environ.get("SHIPYARD_HOME") or HERE.parents[1] / ".demo" / "docs-qa")
    os.environ["SHIPYARD_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    docs = corpus(home / "corpus")
    step(f"index: {len(SLICE) + 1} documents; whatsnew/* excluded, internal/salaries.md sensitive")
    index(docs)
    shipyard("models", "show", "docs-index")

    with deployed(
        home,
        "the index deployed as the docs-qa service",
        f"{HERE / 'service.py'}:DocsQA",
        "docs-qa",
    ) as url:
        step("search: passages, with the document each comes from")
        query = "copy a file with its metadata"
        hits = post(f"{url}/docs-qa/search", {"query": query, "k": 3})
        assert isinstance(hits, list)
        print(f"POST /docs-qa/search {query!r}")
        for hit in hits:
            print(f"  {hit['score']:.4f}  {hit['doc']}  {hit['text'][:70]!r}")
        hits = post(f"{url}/docs-qa/search", {"query": "salary bands 2026", "k": 10})
        assert isinstance(hits, list)
        print(f"POST /docs-qa/search 'salary bands 2026' -> {sorted({h['doc'] for h in hits})}")
        print("(never internal/salaries.md: its front matter says sensitive: true)")

        step("ask: no language-model route is configured here, so answers are extractive")
        for question in QUESTIONS:
            reply = post(f"{url}/docs-qa/ask", {"question": question})
            assert isinstance(reply, dict)
            print(f"POST /docs-qa/ask {question!r}")
            print(f"  {reply['answer'][:300]}")
            print(f"  cites {[c['doc'] for c in reply['citations']]}  ({reply['model']})")
        refused = post_refused(f"{url}/docs-qa/search", b'{"query": "   "}')
        print(f"POST /docs-qa/search with a blank query -> {refused}")

    step("rebuild after one file changed: only its chunks are embedded again")
    page = docs / "library" / "heapq.rst.txt"
    page.write_text(page.read_text() + "\n\nA heap is also called a priority queue here.\n")
    index(docs)

    step("done: the host has stopped and nothing is left running")
    print("Look at what it made: the index (shipyard models show docs-index), the runs")
    print("(shipyard show DocsIndexFlow) and the service, whose deployment the host restores")
    print("(still on the first index: redeploy to serve the rebuilt one), with its docs at")
    print("http://127.0.0.1:8000/docs-qa/docs, and the UI at http://127.0.0.1:8000/ui.")
    print("The nightly rebuild is `shipyard schedule create examples/docs_qa/flow.py` (it indexes")
    print("all of --docs, by default the whole of Python's documentation). Bring the host and")
    print("the UI back up with:")
    print(f"  SHIPYARD_HOME={home} .venv/bin/shipyard serve --port 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
