"""``shipyard serve FILE.py:Class``, the development loop, on a real host: a bad save (a
syntax error, an exception in ``load()``) is printed with its traceback while the version
before it keeps serving; the loop keeps watching and deploys the next good save. The service
is named after the class, and a later plain ``shipyard serve`` does not bring it back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve.hosts import HostProcess
from support.waiting import wait_for

GOOD = """
from shipyard.serve import Service, endpoint


class EchoService(Service):
    @endpoint
    def echo(self, text: str) -> dict[str, str]:
        return {"text": text, "by": "VERSION"}
"""

SYNTAX_ERROR = GOOD.replace("def echo(self, text: str)", "def echo(self, text: str")

LOAD_RAISES = (
    GOOD
    + """
    def load(self) -> None:
        raise RuntimeError("the model file is missing")
"""
)


@pytest.fixture(name="code")
def code_fixture(tmp_path: Path) -> Path:
    directory = tmp_path / "code"
    directory.mkdir()
    (directory / "svc.py").write_text(GOOD.replace("VERSION", "first"))
    return directory


@pytest.fixture(name="dev_host")
def dev_host_fixture(tmp_path: Path, code: Path) -> Iterator[HostProcess]:
    host = HostProcess(tmp_path / "home", args=(f"{code / 'svc.py'}:EchoService",))
    try:
        host.start()
        yield host
    finally:
        host.stop()


def _answer(host: HostProcess) -> str | None:
    try:
        response = host.post("/echo-service/echo", {"text": "hi"}, timeout=10)
    except httpx.HTTPError:
        return None
    return str(response.json()["by"]) if response.status_code == 200 else None


def _log(host: HostProcess) -> str:
    return host.log.read_text()


def test_a_bad_save_is_printed_with_its_traceback_and_the_next_good_one_deployed(
    dev_host: HostProcess, code: Path
) -> None:
    service = code / "svc.py"
    # named after the class: EchoService -> echo-service
    assert wait_for(lambda: _answer(dev_host) == "first", "the first version", 60)

    service.write_text(SYNTAX_ERROR)
    wait_for(lambda: "SyntaxError" in _log(dev_host), "the syntax error printed", 60)
    log = _log(dev_host)
    assert "echo-service v2 did not start" in log
    assert "v1 keeps serving" in log
    assert "    Traceback (most recent call last):" in log  # the worker's, indented
    assert '"traceback"' not in log  # readable, not a JSON blob
    assert _answer(dev_host) == "first"

    service.write_text(LOAD_RAISES.replace("VERSION", "second"))
    wait_for(
        lambda: "RuntimeError: the model file is missing" in _log(dev_host),
        "the load() failure printed",
        60,
    )
    log = _log(dev_host)
    assert 'raise RuntimeError("the model file is missing")' in log  # the line, from the trace
    assert f'File "{service}", line 11, in load' in log  # the user's file, not the snapshot
    assert _answer(dev_host) == "first"

    service.write_text(GOOD.replace("VERSION", "third"))
    assert wait_for(lambda: _answer(dev_host) == "third", "the good save deployed", 60)
    versions = dev_host.cli("deployments", "echo-service").stdout
    assert "v4  live" in versions and "v2  failed" in versions and "v3  failed" in versions


def test_a_save_that_changes_nothing_deploys_nothing(dev_host: HostProcess, code: Path) -> None:
    service = code / "svc.py"
    assert wait_for(lambda: _answer(dev_host) == "first", "the first version", 60)
    service.write_text(service.read_text())  # the same content, saved again
    wait_for(lambda: "changed: svc.py" in _log(dev_host), "the save seen", 60)
    (code / "notes.txt").write_text("not python")  # not watched
    service.write_text("")  # an editor that truncates, then writes: one save
    service.write_text(GOOD.replace("VERSION", "second"))
    assert wait_for(lambda: _answer(dev_host) == "second", "the changed save deployed", 60)
    versions = dev_host.cli("deployments", "echo-service").stdout
    assert "v2  live" in versions and "v3" not in versions  # nor a failed empty file
    assert "notes.txt" not in _log(dev_host)


def test_a_later_plain_serve_does_not_bring_the_dev_service_back(
    tmp_path: Path, code: Path
) -> None:
    home = tmp_path / "home"
    dev = HostProcess(home, args=(f"{code / 'svc.py'}:EchoService", "--name", "echo"))
    try:
        dev.start()
        wait_for(lambda: dev.post("/echo/echo", {"text": "x"}).status_code == 200, "dev", 60)
        dev.deploy(f"{code / 'svc.py'}:EchoService", "kept")  # a plain deploy: restored
    finally:
        dev.stop()
    plain = HostProcess(home)
    try:
        plain.start()
        plain.wait_ready()
        assert plain.post("/kept/echo", {"text": "x"}).status_code == 200
        assert plain.post("/echo/echo", {"text": "x"}).status_code == 404
        listed = plain.cli("deployments").stdout
        assert "kept" in listed and "echo " not in listed
        assert "not restoring echo" in _log(plain)
    finally:
        plain.stop()
