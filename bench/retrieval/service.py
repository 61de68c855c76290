"""bench/retrieval.py's service part on a host of its own, run inside the loopback-only
network namespace the driver makes (the service loads the model; so does the index flow).

    python bench/retrieval/service.py SPEC.json

In a fresh ``SHIPYARD_HOME``: ``examples/docs_qa/flow.py run --docs CORPUS`` registers
``docs-index``; ``shipyard serve`` on a free 127.0.0.1 port; ``shipyard deploy
examples/docs_qa/service.py:DocsQA --name docs-qa`` (one replica; no gateway route, so /ask
answers extractively); then ``shipyard loadtest``: ``/docs-qa/search`` at the goal's rate, and
``--find-max`` for ``/search`` and ``/ask`` at their SLOs. Prints one ``BENCH_JSON`` line with
the loadtest summaries; the host is stopped at the end, however it ends.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, for model_steps

from model_steps import (  # noqa: E402
    REPO,
    free_port,
    loadtest,
    post,
    require_netns,
    run_logged,
    start_host,
    stop,
)

EXAMPLE = REPO / "examples" / "docs_qa"


def main() -> int:
    require_netns()
    spec = json.loads(Path(sys.argv[1]).read_text())
    work = Path(spec["workdir"])
    home = work / "service-home"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SHIPYARD_HOME=str(home))
    log = work / "service.log"
    python = sys.executable
    t0 = time.perf_counter()
    run_logged([python, str(EXAMPLE / "flow.py"), "run", "--docs", spec["docs"]], log, 3600, env)
    result: dict[str, Any] = {"flow_s": time.perf_counter() - t0}
    url = f"http://127.0.0.1:{free_port()}"
    host = start_host(url, work / "host.log", env)
    try:
        run_logged([python, "-m", "shipyard", "deploy", f"{EXAMPLE / 'service.py'}:DocsQA",
                    "--name", "docs-qa", "--url", url], log, 600, env)  # fmt: skip
        key = (home / "admin.token").read_text().strip()
        for q in spec["search"][:3]:  # the replica has loaded the index and the model
            post(f"{url}/docs-qa/search", q, key)
        post(f"{url}/docs-qa/ask", spec["ask"][0], key)
        search, ask = work / "search.jsonl", work / "ask.jsonl"
        search.write_text("".join(json.dumps(b) + "\n" for b in spec["search"]))
        ask.write_text("".join(json.dumps(b) + "\n" for b in spec["ask"]))
        d = f"{spec['duration']:g}s"
        result["search_at_rate"] = loadtest(
            url, "docs-qa/search", search, work / "lt-search", env, "--rate",
            f"{spec['rate']:g}", "--duration", d, "--ramp", "3s", "--slo", spec["search_slo"],
        )  # fmt: skip
        result["search_max"] = loadtest(
            url, "docs-qa/search", search, work / "lt-search-max", env, "--find-max",
            "--rate", f"{spec['rate']:g}", "--duration", d, "--slo",
            f"{spec['search_slo']},errors<1%",
        )  # fmt: skip
        result["ask_max"] = loadtest(
            url, "docs-qa/ask", ask, work / "lt-ask-max", env, "--find-max", "--rate", "10",
            "--duration", d, "--timeout", "60s", "--slo", f"{spec['ask_slo']},errors<1%",
        )  # fmt: skip
    finally:
        stop(host)
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
