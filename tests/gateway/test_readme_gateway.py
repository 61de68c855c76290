"""The README's gateway example works as written: its ``gateway.yaml`` block is valid, and
``shipyard gateway --config gateway.yaml`` (no ``host_url:``) sends the ``service`` route to
the host at ``SHIPYARD_URL``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from gateway_fakes import Upstreams, free_port
from test_cli_gateway import shipyard, wait_up

from shipyard.gateway.config import parse_config
from shipyard.gateway.model import Provider

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_gateway_yaml() -> str:
    """The README's YAML block that starts with ``# gateway.yaml``."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", README.read_text(), re.S | re.M)
    found = [b for b in blocks if b.startswith("# gateway.yaml")]
    assert len(found) == 1, f"README.md has {len(found)} ```yaml blocks starting # gateway.yaml"
    return found[0]


def test_the_readme_example_parses_and_needs_no_host_url() -> None:
    text = readme_gateway_yaml()
    config = parse_config(
        text,
        "README.md",
        host_url="http://127.0.0.1:8000",
        environ={"CHAT_API_KEY": "sk-readme-test"},
    )
    routes = dict(config.routes)
    assert sorted(routes) == ["chat", "local-chat", "ranker"]
    assert routes["ranker"].upstream.provider is Provider.SERVICE
    assert routes["ranker"].upstream.base_url == "http://127.0.0.1:8000/ranker"
    assert "host_url" not in text  # the example must not need it


def test_shipyard_gateway_alone_sends_service_routes_to_shipyard_url(
    tmp_path: Path, live_ups: Upstreams
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(readme_gateway_yaml())
    env = {
        **os.environ,
        "SHIPYARD_HOME": str(tmp_path / "home"),
        "SHIPYARD_URL": live_ups.echo,  # stands in for the host serving `ranker`
        "CHAT_API_KEY": "sk-readme-test",
    }
    env.pop("SHIPYARD_DB_URL", None)
    created = shipyard(env, "keys", "create", "--scope", "route:ranker")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "gateway", "--config", str(config)]
            + ["--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc, log)
        answer = httpx.post(
            url + "/gateway/ranker/home",
            json={"profile": 7},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["path"] == "/ranker/home"
        assert [r["path"] for r in live_ups.rec_echo.requests] == ["/ranker/home"]
    finally:
        proc.terminate()
        proc.wait(20)
