"""Run by tests/examples/test_local_llm.py inside a loopback-only network namespace: a host
with the gateway mounted (``shipyard serve --gateway-config``), the real LocalLLM deployed on
it, and two generations through the gateway's ``local-chat`` route — one whole, one streamed.
Prints one JSON object of what happened for the test to check.

    unshare -n sh -c 'ip link set lo up && exec python tests/examples/local_llm_offline.py DIR'
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = """
routes:
  - name: local-chat
    type: chat
    upstream: {provider: service, service: local-llm, endpoint: chat,
               api_key: "${LOCAL_LLM_KEY}"}
    timeout: 240
    retries: 0
"""
MESSAGES = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What does Python's len() function return?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "description": "Search the documents.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def shipyard(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise SystemExit(f"shipyard {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out.stdout


def outside_is_unreachable() -> bool:
    """Whether a connection to an outside address fails at once (no route in this namespace)."""
    try:
        socket.create_connection(("192.0.2.1", 443), timeout=5).close()
    except OSError:
        return True
    return False


def main(work: Path) -> dict[str, Any]:
    home = work / "home"
    home.mkdir(parents=True)
    env = {**os.environ, "SHIPYARD_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "SHIPYARD_URL", "SHIPYARD_KEY"):
        env.pop(name, None)
    invoke = shipyard(env, "keys", "create", "--scope", "invoke:local-llm").split()[-1]
    caller = shipyard(env, "keys", "create", "--scope", "route:local-chat").split()[-1]
    (work / "gateway.yaml").write_text(GATEWAY)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    log = work / "host.log"
    host_env = {**env, "LOCAL_LLM_KEY": invoke}
    with open(log, "wb") as out:
        host = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "serve", "--port", str(port)]
            + ["--gateway-config", str(work / "gateway.yaml")],
            env=host_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    result: dict[str, Any] = {"outside_unreachable": outside_is_unreachable()}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or host.poll() is not None:
                raise SystemExit(f"the host did not start: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        started = time.perf_counter()
        shipyard(
            env,
            "deploy",
            "examples/docs_qa/local_llm.py:LocalLLM",
            "--name",
            "local-llm",
            "--env",
            "LOCAL_LLM_THREADS=1",
            "--url",
            url,
        )
        result["deploy_seconds"] = time.perf_counter() - started
        headers = {"Authorization": f"Bearer {caller}"}
        body = {"model": "local-chat", "messages": MESSAGES, "tools": TOOLS, "max_tokens": 24}
        with httpx.Client(base_url=url, timeout=300, headers=headers) as client:
            started = time.perf_counter()
            whole = client.post("/v1/chat/completions", json=body)
            result["whole_seconds"] = time.perf_counter() - started
            result["whole"] = {"status": whole.status_code, "body": whole.json()}
            started = time.perf_counter()
            streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
            result["stream_seconds"] = time.perf_counter() - started
            result["stream"] = {
                "status": streamed.status_code,
                "content_type": streamed.headers.get("content-type"),
                "text": streamed.text,
            }
        result["service_log"] = shipyard(env, "service", "logs", "local-llm", "--url", url)
    finally:
        host.send_signal(signal.SIGTERM)
        try:
            host.wait(60)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait()
    result["host_log"] = log.read_text(errors="replace")
    result["invoke_key"] = invoke
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
