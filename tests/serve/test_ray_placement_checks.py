"""``deploy --on ray`` checked before anything starts: the placement's fields, and a host
with no Ray cluster to use (no Ray is started here; tests/ray/test_ray_serve.py runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from shipyard.cli.main import main as cli
from shipyard.cli.serve import pack_service
from shipyard.serve.host import Host
from shipyard.store import context as _stores

URL = "http://127.0.0.1:8000"
SERVICE = """
from shipyard.serve import Service, endpoint


class Echo(Service):
    @endpoint
    def echo(self, x: int) -> int:
        return x
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "SHIPYARD_RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    _stores.reset()
    yield tmp_path / "home"
    _stores.reset()


@pytest.fixture
def client(home: Path, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    host = Host.from_settings()
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "echo.py").write_text(SERVICE)
    body = {"name": "echo", "entry": "echo.py:Echo", "code": pack_service(tmp_path / "svc/echo.py")}
    with TestClient(host, client=("127.0.0.1", 1), base_url=URL) as test_client:
        token = (home / "admin.token").read_text().strip()  # written as the host starts
        test_client.headers.update({"Authorization": f"Bearer {token}"})
        yield test_client, body
    for close in reversed(host.on_close):
        close()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"on": "cloud"}, "field 'on' must be host or ray, got 'cloud'"),
        ({"min_replicas": 2}, "min_replicas apply to a deployment on Ray"),
        ({"on": "ray", "min_replicas": 3, "max_replicas": 2}, "min (3) <= max (2)"),
        ({"on": "ray", "min_replicas": 0}, "need 1 <= min (0)"),
        ({"on": "ray", "target_ongoing": 0}, "target ongoing requests must be > 0"),
        ({"on": "ray", "replica_cpus": "two"}, "field 'replica_cpus' must be a number"),
        ({"on": "ray", "replica_resources": {"gpu": -1}}, "resource 'gpu'"),
    ],
)
def test_a_bad_placement_is_refused_naming_the_field(
    client: tuple[TestClient, dict[str, Any]], extra: dict[str, Any], says: str
) -> None:
    test_client, body = client
    answer = test_client.post("/api/v1/deployments", json={**body, **extra})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["type"] == "validation_error"
    assert says in answer.json()["error"]["message"]


def test_on_ray_without_a_cluster_fails_the_version_and_says_how_to_name_one(
    client: tuple[TestClient, dict[str, Any]],
) -> None:
    test_client, body = client
    answer = test_client.post("/api/v1/deployments", json={**body, "on": "ray"})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["type"] == "load_failed"
    assert "SHIPYARD_RAY_ADDRESS" in error["message"]
    # nothing was started: the same service deploys on the host's own replicas
    here = test_client.post("/api/v1/deployments", json=body)
    assert here.status_code == 200, here.text
    assert test_client.post("/echo/echo", json={"x": 7}).json() == 7
    versions = test_client.get("/api/v1/deployments/echo").json()["versions"]
    assert [(v["status"], v["on"]) for v in versions] == [("failed", "ray"), ("live", "host")]


def test_the_cli_refuses_ray_options_without_on_ray(tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(SERVICE)
    out = CliRunner().invoke(
        cli, ["deploy", f"{tmp_path / 'echo.py'}:Echo", "--name", "echo", "--max-replicas", "4"]
    )
    assert out.exit_code == 2
    assert "--max-replicas apply with --on ray" in out.output
