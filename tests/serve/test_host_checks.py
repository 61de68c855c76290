"""The host's Host checks end to end (issue 11, item 6): a real ``shipyard serve`` on loopback
with ``allowed_hosts: [shipyard.internal]`` and one service.

A DNS-rebinding page in a browser reaches the host with ``Host: evil.example``. Before these
checks ``/metrics``, ``/{svc}/openapi.json`` and ``/{svc}/docs`` answered it 200; now they
refuse it as the admin API does, while the host's own address, its loopback names and the
configured names (a Prometheus scraper, a load balancer in front) are answered as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from hosts import HostProcess

SERVICE = """
from shipyard.serve import Service, endpoint


class Echo(Service):
    @endpoint
    def echo(self, text: str) -> str:
        return text
"""
EVIL = "evil.example"
NAME = "shipyard.internal"  # in allowed_hosts: a name a load balancer or scraper uses
#: the host's keyless reads, and what each answers when it is answered
READS = {
    "/metrics": "shipyard_requests",
    "/echo/openapi.json": "/echo/echo",
    "/echo/docs": "/echo/echo",
}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    home = tmp_path_factory.mktemp("host")
    (home / "config.yaml").write_text(f"allowed_hosts: [{NAME}]\n")
    process = HostProcess(home).start()
    try:
        code = tmp_path_factory.mktemp("svc") / "echo_service.py"
        code.write_text(SERVICE)
        process.deploy(f"{code}:Echo", "echo")
        yield process
    finally:
        process.stop()


def get(
    host: HostProcess, path: str, host_header: str | None = None, **headers: str
) -> httpx.Response:
    if host_header is not None:
        headers["Host"] = host_header
    return httpx.get(host.url + path, headers=headers, timeout=10)


def call(host: HostProcess, host_header: str | None = None, **headers: str) -> httpx.Response:
    if host_header is not None:
        headers["Host"] = host_header
    return host.post("/echo/echo", {"text": "hi"}, headers=headers)


@pytest.mark.parametrize("path", READS)
def test_a_rebinding_page_is_refused_as_the_admin_api_refuses_it(
    host: HostProcess, path: str
) -> None:
    forged = get(host, path, EVIL)  # was 200 with the metrics, the spec or the page
    admin = httpx.get(host.url + "/api/v1/deployments", headers={**host.admin, "Host": EVIL})
    assert admin.status_code == 403
    assert forged.status_code == 403 and forged.json() == admin.json()
    assert forged.headers["content-type"].startswith("application/json")
    assert "allowed_hosts" in forged.json()["error"]["message"]
    assert READS[path] not in forged.text
    for trick in (f"{EVIL}:{host.port}", f"127.0.0.1.{EVIL}", f"localhost.{EVIL}", "10.9.8.7"):
        assert get(host, path, trick).status_code == 403, trick
    # a page on another site that names the host correctly still sends its own Origin
    assert get(host, path, Origin=f"http://{EVIL}").status_code == 403


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(
    "name", ["127.0.0.1:{port}", "127.0.0.1", "localhost:{port}", NAME, NAME.upper() + ":80"]
)
def test_the_hosts_own_address_and_configured_names_are_answered(
    host: HostProcess, path: str, name: str
) -> None:
    answer = get(host, path, name.format(port=host.port))
    assert answer.status_code == 200 and READS[path] in answer.text


def test_a_same_origin_page_is_answered(host: HostProcess) -> None:
    here = f"127.0.0.1:{host.port}"
    assert get(host, "/echo/docs", here, Origin=f"http://{here}").status_code == 200


def test_probes_answer_any_host_but_readiness_detail_only_the_hosts_names(
    host: HostProcess,
) -> None:
    for name in (EVIL, "10.9.8.7:8000", "anything.internal"):
        assert get(host, "/healthz", name).json() == {"status": "ok"}
        ready = get(host, "/readyz", name)
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}  # no names
    for name in (f"127.0.0.1:{host.port}", NAME):
        detail = get(host, "/readyz", name).json()
        assert detail["status"] == "ready" and "echo" in detail["services"], detail
        assert detail["not_ready"] == []


def test_service_calls_keep_their_checks_and_the_last_keys_revocation_is_said(
    host: HostProcess,
) -> None:
    # no invoke key: open to loopback, but only under the host's names (as before)
    assert call(host).json() == "hi"
    refused = call(host, EVIL)
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "forbidden"
    # with a key, the key is the proof: a rebinding page cannot hold it (as before)
    made = host.cli("keys", "create", "--scope", "invoke:echo", remote=False)
    key = made.stdout.splitlines()[-1]
    assert call(host, EVIL, Authorization=f"Bearer {key}").json() == "hi"
    _until(lambda: call(host).status_code == 401, "keyless calls refused once a key exists")
    # revoking the last invoke key re-opens keyless loopback calls: the command says so ...
    revoked = host.cli("keys", "revoke", key.split("_")[1], remote=False)
    assert "revoked key" in revoked.stdout
    assert "open again" in revoked.stderr and "--scope 'invoke:*'" in revoked.stderr
    # ... and so does the host, once, when it notices (within the key cache's 5 s)
    _until(lambda: call(host).status_code == 200, "keyless calls open again")
    _until(lambda: "key is left" in host.log.read_text(), "the host's warning")
    lines = [line for line in host.log.read_text().splitlines() if "key is left" in line]
    assert len(lines) == 1 and "shipyard.keys" in lines[0], lines
    assert "service calls are open again" in lines[0] and "--scope 'invoke:*'" in lines[0]


def _until(done: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
