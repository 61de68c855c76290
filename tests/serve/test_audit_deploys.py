"""``models audit`` shows the deploys that pinned a model's versions, and moving an alias a
deployment pinned through says which deployments still serve the old version: a real host
deploys a service with ``--model tiny@prod``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hosts import HostProcess

from shipyard.testing import run_flow

SERVICE = """
from shipyard import Model
from shipyard.serve import Service, endpoint


class Tiny(Service):
    def load(self):
        self.spec = Model("tiny@prod").resolve()

    @endpoint
    def which(self) -> str:
        return self.spec
"""

FLOW = (
    "from shipyard import FlowSpec, step, current\n"
    "class AuditFlow(FlowSpec):\n"
    "    @step\n    def start(self):\n"
    "        current.register_model('tiny', {'w': 1})\n        self.next(self.end)\n"
    "    @step\n    def end(self):\n        pass\n"
)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    process = HostProcess(tmp_path_factory.mktemp("audit"), env={"COLUMNS": "250"}).start()
    try:
        yield process
    finally:
        process.stop()


def test_audit_shows_deploys_and_an_alias_move_names_who_still_serves(
    host: HostProcess, tmp_path: Path
) -> None:
    os.environ["SHIPYARD_HOME"] = str(host.home)
    try:
        run_flow(FLOW)
        run_flow(FLOW)
    finally:
        os.environ.pop("SHIPYARD_HOME", None)
    host.cli("models", "alias", "tiny", "1", "prod", remote=False)
    path = tmp_path / "tiny_service.py"
    path.write_text(SERVICE)
    host.deploy(f"{path}:Tiny", "tiny-svc", "--model", "tiny@prod")
    assert host.post("/tiny-svc/which", {}).json() == "tiny:1"

    audit = host.cli("models", "audit", "tiny", remote=False).stdout.splitlines()
    deploys = [line for line in audit if " deploy " in line]
    assert len(deploys) == 1, audit
    cells = deploys[0].split()
    assert cells[3:8] == ["deploy", "tiny", "prod", "-", "1"], cells
    assert "tiny-svc v1" in deploys[0] and "tiny@prod = tiny:1" in deploys[0]
    every = host.cli("models", "audit", remote=False).stdout
    assert "tiny-svc v1" in every and every.count(" register ") == 2

    moved = host.cli("models", "alias", "tiny", "2", "prod", remote=False).stdout
    assert "tiny@prod moved: version 1 -> 2" in moved
    assert "deployment tiny-svc (v1) still serves tiny:1" in moved
    assert "--name tiny-svc --model tiny@prod) to serve version 2" in moved
    assert host.post("/tiny-svc/which", {}).json() == "tiny:1"  # as the message says
    page = httpx.get(f"{host.url}/ui/models/tiny", timeout=30)
    assert page.status_code == 200
    assert "still serves tiny:1: @prod points at version 2 now" in page.text

    # the admin API's alias move says the same
    moved_back = httpx.post(
        f"{host.url}/api/v1/models/tiny/aliases/prod", json={"version": 1}, headers=host.admin
    ).json()
    assert moved_back["previous"] == 2 and moved_back["still_serving"] == []
    again = httpx.post(
        f"{host.url}/api/v1/models/tiny/aliases/prod", json={"version": 2}, headers=host.admin
    ).json()
    assert again["still_serving"] == [
        {"service": "tiny-svc", "deployment_version": 1, "serves": "tiny:1"}
    ]
    back = host.cli("models", "alias", "tiny", "1", "prod", remote=False).stdout
    assert "still serves" not in back  # it serves what the alias points at again
    page = httpx.get(f"{host.url}/ui/models/tiny", timeout=30).text
    assert "still serves" not in page and "what @prod points at" in page
