"""``shipyard gateway`` and ``shipyard serve --gateway-config`` as real processes: keys from
``shipyard keys create``, SIGHUP reloads, an invalid file at start is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from gateway_fakes import Upstreams, free_port

ROUTES = """
routes:
  - name: chat
    type: chat
    upstream: {{provider: openai, base_url: "{url}/v1", model: echo}}
"""


def shipyard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(log.read_text())


def test_gateway_command_keys_and_sighup(tmp_path: Path, live_ups: Upstreams) -> None:
    ups = live_ups
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home")}
    env.pop("SHIPYARD_DB_URL", None)
    config = tmp_path / "gateway.yaml"
    config.write_text(ROUTES.format(url=ups.a))
    created = shipyard(env, "keys", "create", "--scope", "route:chat", "--name", "t")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    broken = tmp_path / "broken.yaml"
    broken.write_text("routes:\n  - name: chat\n    type: chat\n    upstream: {provider: x}\n")
    refused = shipyard(env, "gateway", "--config", str(broken))
    assert refused.returncode == 1 and f"{broken}:4:" in refused.stderr

    port = free_port()
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shipyard",
                "gateway",
                "--config",
                str(config),
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc, log)
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        r = httpx.post(url + "/v1/chat/completions", json=body, headers=auth)
        assert r.json()["choices"][0]["message"]["content"] == "a:hi"
        config.write_text(ROUTES.format(url=ups.b))
        proc.send_signal(signal.SIGHUP)  # the watcher may also see it: either reloads
        deadline = time.monotonic() + 10
        while "b:hi" not in httpx.post(url + "/v1/chat/completions", json=body, headers=auth).text:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert proc.poll() is None  # SIGHUP did not kill it
        assert "shipyard_gateway_requests_total" in httpx.get(url + "/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert "reloaded" in log.read_text()
    assert key not in log.read_text()


def test_serve_mounts_the_gateway(tmp_path: Path, live_ups: Upstreams) -> None:
    ups = live_ups
    env = {**os.environ, "SHIPYARD_HOME": str(tmp_path / "home")}
    env.pop("SHIPYARD_DB_URL", None)
    config = tmp_path / "gateway.yaml"
    config.write_text(ROUTES.format(url=ups.a))
    key = shipyard(env, "keys", "create", "--scope", "route:*").stdout.strip().splitlines()[-1]
    port = free_port()
    log = tmp_path / "host.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shipyard",
                "serve",
                "--port",
                str(port),
                "--gateway-config",
                str(config),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc, log)
        auth = {"Authorization": f"Bearer {key}"}
        models = httpx.get(url + "/v1/models", headers=auth)
        assert [m["id"] for m in models.json()["data"]] == ["chat"]
        body = {"model": "chat", "messages": [{"role": "user", "content": "m"}]}
        r = httpx.post(url + "/v1/chat/completions", json=body, headers=auth)
        assert r.json()["choices"][0]["message"]["content"] == "a:m"
        assert "shipyard_gateway_requests_total" in httpx.get(url + "/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
