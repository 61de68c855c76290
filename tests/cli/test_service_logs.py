"""``shipyard service logs NAME`` on a real host: the error id of a 500 finds the failure and
its traceback; the replicas' lines are merged in time order; ``--follow`` prints what is
written later, new replicas' files included, until Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serve.hosts import HostProcess
from shipyard.serve.logs import Cursor, read_logs, render

SERVICE = """
from shipyard.serve import Service, endpoint


class Divider(Service):
    def load(self) -> None:
        print("loading the divider", flush=True)

    @endpoint
    def divide(self, a: int, b: int) -> float:
        print(f"dividing {a} by {b}", flush=True)
        return a / b
"""


@pytest.fixture(scope="module", name="host")
def host_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    root = tmp_path_factory.mktemp("logs")
    code = root / "code"
    code.mkdir()
    (code / "svc.py").write_text(SERVICE)
    host = HostProcess(root / "home")
    try:
        host.start()
        host.deploy(f"{code / 'svc.py'}:Divider", "divider", "--replicas", "2")
        yield host
    finally:
        host.stop()


def test_the_error_id_of_a_500_finds_the_failure_and_its_traceback(host: HostProcess) -> None:
    response = host.post("/divider/divide", {"a": 1, "b": 0})
    assert response.status_code == 500
    error = response.json()["error"]
    error_id = error["error_id"]
    command = f"shipyard service logs divider --error-id {error_id}"
    assert command in error["message"]  # the 500 names the command to run

    out = host.cli("service", "logs", "divider", "--error-id", error_id).stdout
    lines = out.splitlines()
    assert (
        f"endpoint_error divide: ZeroDivisionError: division by zero  [error_id {error_id}]"
        in (lines[0])
    )
    assert "    Traceback (most recent call last):" in lines  # indented under its event
    assert "        return a / b" in lines
    assert "    ZeroDivisionError: division by zero" in lines
    assert "dividing" not in out  # only that failure

    as_json = host.cli("service", "logs", "divider", "--error-id", error_id, "--json").stdout
    (event,) = [json.loads(line) for line in as_json.splitlines()]
    assert event["event"]["error_id"] == error_id and "Traceback" in event["event"]["traceback"]


def test_an_unknown_error_id_says_where_it_looked(host: HostProcess) -> None:
    out = host.cli("service", "logs", "divider", "--error-id", "0123456789abcdef", check=False)
    assert out.returncode == 1
    logs = host.home / "serve" / "logs" / "divider"
    assert "no error id '0123456789abcdef' in the logs of service 'divider'" in out.stderr
    assert f"under {logs}" in out.stderr and "2 file(s)" in out.stderr

    out = host.cli("service", "logs", "nothing", check=False)
    assert out.returncode == 1 and "no logs of a service named 'nothing'" in out.stderr
    out = host.cli("service", "logs", "divider", "--since", "ten", check=False)
    assert out.returncode == 2 and "bad --since 'ten'" in out.stderr

    # the admin API's rules: a key, and the checks of its parameters
    path = "/api/v1/services/divider/logs"
    assert httpx.get(host.url + path, timeout=10).status_code == 401
    bad = httpx.get(host.url + path + "?tail=-1", headers=host.admin, timeout=10)
    assert bad.status_code == 422 and "tail must be a whole number" in bad.text
    bad = httpx.get(host.url + path + "?after=x", headers=host.admin, timeout=10)
    assert bad.status_code == 422 and "bad logs cursor" in bad.text
    dots = httpx.get(host.url + "/api/v1/services/%2E%2E/logs", headers=host.admin, timeout=10)
    assert dots.status_code == 404 and "service name '..' is not valid" in dots.text


def test_the_replicas_lines_are_merged_in_time_order(host: HostProcess) -> None:
    out = host.cli("service", "logs", "divider", "--json").stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert {line["replica"] for line in lines} == {1, 2}
    times = [line["at"] for line in lines]
    assert times == sorted(times)
    # load()'s print has no time: it comes just before its replica's first stamped line
    for replica in (1, 2):
        own = [line for line in lines if line["replica"] == replica]
        assert own[0]["text"] == "loading the divider" and not own[0]["stamped"]
        assert own[1]["event"]["event"] == "ready"


def test_merging_keeps_unstamped_lines_after_their_stamped_line(tmp_path: Path) -> None:
    logs = tmp_path / "serve" / "logs" / "svc"
    logs.mkdir(parents=True)

    def event(ts: float, name: str) -> str:
        return json.dumps({"ts": ts, "event": name})

    (logs / "v1-1.log").write_text(
        "\n".join(["boot 1", event(10, "a"), "print after a", event(30, "c"), "tail 1"]) + "\n"
    )
    (logs / "v1-2.log").write_text(
        "\n".join([event(20, "b"), "print after b", event(40, "d")]) + "\npartial"
    )
    page = read_logs(tmp_path, "svc")
    assert [(line.replica, line.text) for line in page.lines] == [
        (1, "boot 1"),
        (1, event(10, "a")),
        (1, "print after a"),
        (2, event(20, "b")),
        (2, "print after b"),
        (1, event(30, "c")),
        (1, "tail 1"),
        (2, event(40, "d")),  # "partial" has no newline yet: read next time
    ]
    assert [render(line) for line in page.lines[:3]] == [
        " " * 23 + "  v1 r1  | boot 1",  # no time of its own
        "1970-01-01 00:00:10.000  v1 r1  a",
        " " * 23 + "  v1 r1  | print after a",
    ]
    assert [line.text for line in read_logs(tmp_path, "svc", tail=2).lines] == [
        "tail 1",
        event(40, "d"),
    ]
    with (logs / "v1-2.log").open("a") as file:
        file.write(" line\n")
    (logs / "v2-3.log").write_text(event(50, "e") + "\n")  # a new replica's file
    later = read_logs(tmp_path, "svc", after=Cursor.parse(str(page.cursor)))
    assert [line.text for line in later.lines] == ["partial line", event(50, "e")]


def _reader(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def _until(lines: queue.Queue[str], wanted: str, timeout: float = 30) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(wanted in line for line in seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"waited {timeout} s for {wanted!r}; saw {seen[-20:]}")
        try:
            seen.append(lines.get(timeout=left))
        except queue.Empty:
            continue
    return seen


def test_follow_prints_new_lines_and_new_replicas_until_ctrl_c(host: HostProcess) -> None:
    command = [sys.executable, "-m", "shipyard", "service", "logs", "divider", "-f", "--tail", "1"]
    with subprocess.Popen(
        [*command, "--url", host.url],
        env=host.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as follow:
        try:
            lines = _reader(follow)
            assert lines.get(timeout=30)  # the last line so far: it follows from here
            assert host.post("/divider/divide", {"a": 6, "b": 3}).status_code == 200
            _until(lines, "| dividing 6 by 3")
            host.cli("scale", "divider", "3")  # a third replica: a file that did not exist
            seen = _until(lines, "| loading the divider")
            assert any(" r3 " in line for line in seen)
            follow.send_signal(signal.SIGINT)
            assert follow.wait(30) == 0
        finally:
            if follow.poll() is None:
                follow.kill()
            host.cli("scale", "divider", "2")


#: how CI launched the suite (``setsid ... &`` from a script): a shell without job control
#: starts a background command with SIGINT ignored, and every process it starts inherits that
IGNORING_SIGINT = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]


def _sigint_ignored(status: str) -> bool:
    """Whether a ``/proc/PID/status`` text says SIGINT is ignored."""
    (ignored,) = [line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")]
    return bool(int(ignored, 16) & (1 << (signal.SIGINT - 1)))


def test_the_launcher_hands_on_sigint_ignored() -> None:
    """What the two tests below rely on: a process started so ignores SIGINT."""
    status = subprocess.run(
        [*IGNORING_SIGINT, "cat", "/proc/self/status"], capture_output=True, text=True, check=True
    ).stdout
    assert _sigint_ignored(status)


def test_ctrl_c_stops_follow_even_when_it_inherited_sigint_ignored(host: HostProcess) -> None:
    command = [sys.executable, "-m", "shipyard", "service", "logs", "divider", "-f", "--tail", "1"]
    with subprocess.Popen(
        [*IGNORING_SIGINT, *command, "--url", host.url],
        env=host.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as follow:
        try:
            lines = _reader(follow)
            assert lines.get(timeout=30)
            assert host.post("/divider/divide", {"a": 8, "b": 2}).status_code == 200
            _until(lines, "| dividing 8 by 2")  # in the follow loop now
            follow.send_signal(signal.SIGINT)
            assert follow.wait(10) == 0
        finally:
            if follow.poll() is None:
                follow.kill()


def test_ctrl_c_stops_follow_while_a_request_waits_for_an_answer(tmp_path: Path) -> None:
    """SIGINT at the worst point: the command waits (up to 10 min) for a host that took the
    request and does not answer, and it started with SIGINT ignored."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        command = [sys.executable, "-m", "shipyard", "service", "logs", "svc", "-f"]
        with subprocess.Popen(
            [*IGNORING_SIGINT, *command, "--url", url, "--key", "k"],
            env={**os.environ, "SHIPYARD_HOME": str(tmp_path / "home")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as follow:
            try:
                listener.settimeout(60)
                connection, _ = listener.accept()
                with connection:
                    request = b""
                    while b"\r\n\r\n" not in request:  # all of it: it waits for the answer
                        request += connection.recv(65536)
                    assert request.startswith(b"GET /api/v1/services/svc/logs")
                    status = Path(f"/proc/{follow.pid}/status").read_text()
                    assert not _sigint_ignored(status)  # the command took SIGINT back
                    follow.send_signal(signal.SIGINT)
                    assert follow.wait(10) == 0
                    assert follow.stderr is not None and follow.stderr.read() == ""
            finally:
                if follow.poll() is None:
                    follow.kill()


def test_a_tail_of_a_long_log_reads_its_end(tmp_path: Path) -> None:
    logs = tmp_path / "serve" / "logs" / "svc"
    logs.mkdir(parents=True)
    with (logs / "v1-1.log").open("w") as file:
        for n in range(100_000):
            file.write(json.dumps({"ts": n, "event": "tick", "n": n}) + "\n")
            if n == 500:
                file.write(
                    json.dumps({"ts": n, "event": "endpoint_error", "error_id": "e1"}) + "\n"
                )
        file.write("printed last\n")
    page = read_logs(tmp_path, "svc", tail=3)
    assert [line.text for line in page.lines][1:] == [
        json.dumps({"ts": 99_999, "event": "tick", "n": 99_999}),
        "printed last",
    ]
    assert page.lines[-1].at == 99_999 and not page.lines[-1].stamped
    assert page.cursor == read_logs(tmp_path, "svc").cursor  # the same end, either way
    (found,) = read_logs(tmp_path, "svc", error_id="e1").lines
    assert found.at == 500 and found.error_id == "e1"
