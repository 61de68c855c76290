"""``shipyard loadtest SERVICE/ENDPOINT`` against a real host (``shipyard serve`` with a
service deployed): the host counts exactly the requests the client sent, the client reads
its key the way the other commands do, and the run is kept with the deployment (listed on
the UI's page of the service, with its report)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx

from serve.hosts import HostProcess

SERVICE = """
from shipyard.serve import Service, endpoint


class Echo(Service):
    @endpoint
    def echo(self, x: int) -> int:
        return x
"""


def _served(url: str, code: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    found = re.findall(r"^shipyard_requests_total\{([^}]*)\} (\S+)$", text, re.M)
    return sum(
        float(value)
        for labels, value in found
        if 'service="echo"' in labels and f'code="{code}"' in labels
    )


def test_a_load_test_of_a_deployed_service_is_counted_by_the_host(tmp_path: Path) -> None:
    host = HostProcess(tmp_path / "home").start()
    try:
        code_dir = tmp_path / "code"
        code_dir.mkdir()
        (code_dir / "echo_service.py").write_text(SERVICE)
        host.deploy(f"{code_dir / 'echo_service.py'}:Echo", "echo")
        # an invoke key exists: a keyless call would be refused, so the admin token that
        # the command reads from SHIPYARD_HOME (as `deploy` does) must be sent
        created = host.cli("keys", "create", "--scope", "invoke:echo", remote=False)
        invoke_key = created.stdout.strip().splitlines()[-1]
        done = subprocess.run(
            [sys.executable, "-m", "shipyard", "loadtest", "echo/echo", "--json", '{"x": 3}',
             "--concurrency", "4", "--max-requests", "300", "--duration", "30s",
             "--url", host.url, "--out", str(tmp_path / "out")],
            env=host.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["requests"] == 300 and summary["errors"] == 0, summary
        assert summary["target"] == "echo/echo"
        assert _served(host.url, "200") == 300
        # kept with the deployment (the admin token read from SHIPYARD_HOME), on its page
        assert "recorded with echo v1 (load test 1;" in done.stderr, done.stderr
        page = httpx.get(host.url + "/ui/deployments/echo", timeout=10)
        assert page.status_code == 200
        assert 'data-loadtest="1"' in page.text and "closed, 4 conn." in page.text
        report = httpx.get(host.url + "/ui/deployments/echo/loadtests/1", timeout=10)
        assert report.status_code == 200 and "Load test of echo/echo" in report.text
        assert "sandbox" in report.headers["content-security-policy"]
        missing = httpx.get(host.url + "/ui/deployments/echo/loadtests/2", timeout=10)
        assert missing.status_code == 404
        # an invoke key calls the service but cannot record: said, and the run still passes
        done = subprocess.run(
            [sys.executable, "-m", "shipyard", "loadtest", "echo/echo", "--json", '{"x": 3}',
             "--concurrency", "1", "--max-requests", "10", "--url", host.url,
             "--key", invoke_key],
            env=host.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "not recorded with the deployment (403)" in done.stderr, done.stderr
        assert _served(host.url, "200") == 310
        unknown = httpx.post(host.url + "/api/v1/deployments/nope/loadtests", headers=host.admin,
                             json={"summary": {}}, timeout=10)  # fmt: skip
        assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found"
    finally:
        host.stop()
