"""The host serves the UI under /ui (before its /{service} routes), with live replica
columns on the deployments page; and ``shipyard ui`` is a command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from shipyard._app import host_app
from shipyard.serve.host import Host
from shipyard.store import context as _stores


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    made = host_app()
    yield made
    for close in reversed(made.on_close):
        close()
    _stores.reset()


def test_the_host_mounts_the_ui(host: Host) -> None:
    run_id = host.meta.create_run(
        "HostFlow", user="ann", params={}, tags=[], graph={}, code_key=None
    )
    client = TestClient(host, client=("127.0.0.1", 1), base_url="http://127.0.0.1:8000")
    assert client.get("/ui", follow_redirects=False).status_code in (307, 308)
    page = client.get("/ui/runs")
    assert page.status_code == 200 and f'data-run="HostFlow/{run_id}"' in page.text
    assert 'href="/ui/static/ui.css"' in page.text
    assert client.get("/ui/static/ui.js").status_code == 200
    deployments = client.get("/ui/deployments")
    assert deployments.status_code == 200 and 'id="desired-note"' not in deployments.text
    missing = client.get("/ui/runs/HostFlow/424242")
    assert missing.status_code == 404 and "does not exist" in missing.text
    # the host's own routes still answer as before
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/ranker/docs").status_code == 404


def test_shipyard_ui_is_a_command() -> None:
    from shipyard.cli.main import main

    result = CliRunner().invoke(main, ["ui", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "8002" in result.output
    bad = CliRunner().invoke(main, ["ui", "--port", "70000"])
    assert bad.exit_code == 2
