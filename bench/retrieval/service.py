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

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "docs_qa"


def run(argv: list[str], log: Path, timeout: float, env: dict[str, str]) -> None:
    with open(log, "ab") as out:
        done = subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=REPO
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{tail}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str, host: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.poll() is not None:
            raise SystemExit(f"the host exited:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return
        time.sleep(0.2)
    raise SystemExit(f"the host did not come up in {timeout:g} s")


def post(url: str, body: object, key: str) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def loadtest(
    url: str, endpoint: str, bodies: Path, out: Path, env: dict[str, str], *extra: str
) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "shipyard", "loadtest", endpoint, "--url", url,
        "--bodies", str(bodies), "--out", str(out), "--no-record", *extra,
    ]  # fmt: skip
    subprocess.run(argv, env=env, cwd=REPO, capture_output=True, timeout=1800)
    summary = out / "summary.json"
    if not summary.exists():
        raise SystemExit(f"shipyard loadtest {endpoint} {' '.join(extra)} wrote no summary")
    return dict(json.loads(summary.read_text()))


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    work = Path(spec["workdir"])
    home = work / "service-home"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SHIPYARD_HOME=str(home))
    log = work / "service.log"
    python = sys.executable
    t0 = time.perf_counter()
    run([python, str(EXAMPLE / "flow.py"), "run", "--docs", spec["docs"]], log, 3600, env)
    flow_s = time.perf_counter() - t0
    url = f"http://127.0.0.1:{free_port()}"
    with open(work / "host.log", "ab") as host_log:
        host = subprocess.Popen(
            [python, "-m", "shipyard", "serve", "--port", url.rsplit(":", 1)[1]],
            stdout=host_log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )  # fmt: skip (in the driver's session: whatever is left, the driver ends)
    result: dict[str, Any] = {"flow_s": flow_s}
    try:
        healthy(url, host, work / "host.log", 120)
        run([python, "-m", "shipyard", "deploy", f"{EXAMPLE / 'service.py'}:DocsQA",
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
        host.send_signal(signal.SIGTERM)
        try:
            host.wait(30)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait(10)
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
