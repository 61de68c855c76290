"""Secrets by reference, end to end on a real host: the value reaches the worker's
environment and nothing else — not meta.db or its -wal, not a log, not the CLI, the admin
API or the UI (which show the reference) — a deploy whose secret cannot be read is refused
naming it, and a secret that goes away later fails the replica's start with the reason in
the deployment's events while the host carries on."""

from __future__ import annotations

import hashlib
import os
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hosts import HostProcess

from shipyard.cli.serve import pack_service

#: distinctive values: if any byte sequence equal to them turns up, it was written
ENV_VALUE = f"sy-env-secret-{uuid.uuid4().hex}"
FILE_VALUE = f"sy-file-secret-{uuid.uuid4().hex}"
LATER_VALUE = f"sy-later-secret-{uuid.uuid4().hex}"
#: an --env value, stored as given: the control that shows the search finds what is written
SETTING = f"sy-plain-setting-{uuid.uuid4().hex}"

SERVICE = """
import hashlib, os, signal
from shipyard.serve import Service, endpoint


class Keeper(Service):
    @endpoint
    def digest(self, name: str) -> str | None:
        value = os.environ.get(name)
        return None if value is None else hashlib.sha256(value.encode()).hexdigest()

    @endpoint
    def die(self) -> int:
        os.kill(os.getpid(), signal.SIGKILL)
        return 0
"""


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the secret files live: outside SHIPYARD_HOME, as /run/secrets would be."""
    return tmp_path_factory.mktemp("run-secrets")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    process = HostProcess(
        tmp_path_factory.mktemp("host"), env={"RANKER_API_KEY": ENV_VALUE}
    ).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("svc") / "keeper.py"
    path.write_text(textwrap.dedent(SERVICE))
    return path


def _describe(host: HostProcess, name: str) -> httpx.Response:
    return httpx.get(f"{host.url}/api/v1/deployments/{name}", headers=host.admin, timeout=30)


def _deploy_body(service: Path, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "entry": "keeper.py:Keeper", "code": pack_service(service), **extra}


def _ui_page(host: HostProcess, path: str) -> str:
    out = host.cli("keys", "create", "--scope", "admin", "--name", "ui-check", remote=False)
    key = out.stdout.strip().splitlines()[-1]
    with httpx.Client(base_url=host.url, timeout=60) as ui:
        signed = ui.post("/ui/signin", data={"key": key, "next": path})
        assert signed.status_code in (200, 303), signed.text
        return ui.get(path).text


def _files_holding(root: Path, values: list[str]) -> list[str]:
    """Every file under ``root`` that holds any of ``values``, as raw bytes."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                data = path.read_bytes()
            except OSError:  # a socket or a file gone meanwhile
                continue
            found += [f"{path}: {v}" for v in values if v.encode() in data]
    return found


def test_a_secret_reaches_the_worker_and_is_written_nowhere(
    host: HostProcess, service: Path, outside: Path
) -> None:
    secret_file = outside / "ranker-db"
    secret_file.write_text(FILE_VALUE + "\n")
    deployed = host.deploy(
        f"{service}:Keeper",
        "keeper",
        "--secret",
        "API_KEY=env:RANKER_API_KEY",
        "--secret",
        f"DB_PASSWORD=file:{secret_file}",
        "--env",
        f"LOG_LEVEL={SETTING}",
    )
    # in the worker's environment, and nowhere else the host keeps
    assert host.post("/keeper/digest", {"name": "API_KEY"}).json() == _sha(ENV_VALUE)
    assert host.post("/keeper/digest", {"name": "DB_PASSWORD"}).json() == _sha(FILE_VALUE)
    assert host.post("/keeper/digest", {"name": "RANKER_API_KEY"}).json() is None

    # the CLI, the admin API and the UI show the references
    listing = host.cli("deployments", "keeper")
    assert "secret API_KEY=env:RANKER_API_KEY" in listing.stdout
    assert f"secret DB_PASSWORD=file:{secret_file}" in listing.stdout
    described = _describe(host, "keeper")
    assert described.json()["versions"][-1]["secrets"] == {
        "API_KEY": "env:RANKER_API_KEY",
        "DB_PASSWORD": f"file:{secret_file}",
    }
    every = httpx.get(f"{host.url}/api/v1/deployments", headers=host.admin, timeout=30)
    page = _ui_page(host, "/ui/deployments/keeper")
    assert "API_KEY = env:RANKER_API_KEY" in page
    shown = [
        deployed.stdout + deployed.stderr,
        listing.stdout + listing.stderr,
        described.text,
        every.text,
        page,
    ]
    assert [v for v in (ENV_VALUE, FILE_VALUE) if any(v in text for text in shown)] == []

    # not in meta.db, its -wal, the host's log, the workers' logs, blobs, code or cache
    database = host.home / "meta.db"
    assert database.exists() and Path(f"{database}-wal").exists()
    assert (host.home / "host.log").exists()
    assert _files_holding(host.home, [ENV_VALUE, FILE_VALUE]) == []
    control = _files_holding(host.home, [SETTING])
    assert any(hit.startswith(str(database)) for hit in control), control


def test_a_secret_the_host_cannot_read_fails_the_deploy_naming_it(
    host: HostProcess, service: Path, outside: Path
) -> None:
    out = host.cli(
        "deploy",
        f"{service}:Keeper",
        "--name",
        "refused",
        "--secret",
        "API_KEY=env:SHIPYARD_TEST_NEVER_SET",
        check=False,
    )
    assert out.returncode == 1
    assert (
        "secret API_KEY (env:SHIPYARD_TEST_NEVER_SET): the host has no environment variable "
        "SHIPYARD_TEST_NEVER_SET" in out.stderr
    )
    assert "422 secret_unavailable" in out.stderr
    refusals: list[tuple[dict[str, Any], str, str]] = [
        (
            {"secrets": {"TOKEN": f"file:{outside / 'missing'}"}},
            "secret_unavailable",
            f"secret TOKEN (file:{outside / 'missing'}): the host cannot read",
        ),
        (
            {"secrets": {"TOKEN": f"file:{host.home / 'admin.token'}"}},
            "secret_unavailable",
            "files under SHIPYARD_HOME are shipyard's own",
        ),
        ({"secrets": {"TOKEN": FILE_VALUE}}, "validation_error", "that is no reference"),
        (
            {"secrets": {"TOKEN": "env:RANKER_API_KEY"}, "env": {"TOKEN": "x"}},
            "validation_error",
            "TOKEN given both in env and in secrets",
        ),
    ]
    for extra, kind, why in refusals:
        body = _deploy_body(service, "refused", **extra)
        r = host.post("/api/v1/deployments", body, headers=host.admin)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["type"] == kind and why in r.json()["error"]["message"]
        assert FILE_VALUE not in r.text
    assert _describe(host, "refused").status_code == 404  # nothing was recorded


def test_a_secret_gone_later_fails_the_replica_start_with_the_reason_in_its_events(
    host: HostProcess, service: Path, outside: Path
) -> None:
    secret_file = outside / "rotating"
    secret_file.write_text(LATER_VALUE)
    body = _deploy_body(service, "rotating", secrets={"TOKEN": f"file:{secret_file}"})
    assert host.post("/api/v1/deployments", body, headers=host.admin).status_code == 200
    secret_file.unlink()
    assert host.post("/rotating/die", {}).status_code == 503
    deadline = time.monotonic() + 60
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not events:
        events = _describe(host, "rotating").json()["events"]
        time.sleep(0.1)
    assert events and events[-1]["event"] == "replica_start_failed"
    reason = events[-1]["reason"]
    assert reason.startswith(f"secret TOKEN (file:{secret_file}): the host cannot read"), reason
    listing = host.cli("deployments", "rotating").stdout
    assert f"replica_start_failed: secret TOKEN (file:{secret_file})" in listing
    # the host carries on: other services answer, and the replica comes back with the file
    assert httpx.get(host.url + "/healthz", timeout=10).status_code == 200
    assert host.proc is not None and host.proc.poll() is None
    secret_file.write_text(LATER_VALUE)
    while time.monotonic() < deadline and not host.worker_pids("rotating"):
        time.sleep(0.1)
    assert host.post("/rotating/digest", {"name": "TOKEN"}).json() == _sha(LATER_VALUE)
    assert _files_holding(host.home, [LATER_VALUE]) == []
