"""A team's shared setup: two ``shipyard serve`` hosts (separate homes, separate loopback
ports) sharing one PostgreSQL database and one S3 bucket, behind Debian's nginx.

What a deploy, scale, rollout or undeploy made through one host does on the other (live
reconciliation, no restart); what a ``kill -9`` of one host under a bounded ``shipyard
loadtest`` through nginx costs (only its requests in flight); and that a restarted host stops
only its own leftovers, never the other host's workers."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hosts import HostProcess

from support.host_processes import alive, workers_of_home
from support.servers import pg_schema_url, server_url
from support.team_hosts import Nginx, write_service
from support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

#: how often each host reads the desired state here (the default is 1 s)
INTERVAL = "0.5"


@pytest.fixture
def shared(pg_database: sa.URL, s3_url: str) -> dict[str, str]:
    """What the hosts share: a fresh PostgreSQL schema and a fresh bucket."""
    return {"SHIPYARD_DB_URL": pg_schema_url(pg_database), "SHIPYARD_STORE_URL": s3_url}


@pytest.fixture
def team(shared: dict[str, str], tmp_path: Path) -> Iterator[list[HostProcess]]:
    """Hosts ``a`` and ``b`` on the shared database and bucket, each on its own home."""
    args = ("--reconcile-interval", INTERVAL, "--no-access-log")
    hosts = [HostProcess(tmp_path / name, env=shared, args=args) for name in ("a", "b")]
    try:
        for host in hosts:
            host.start()
        yield hosts
    finally:
        for host in hosts:
            host.stop()


def who(host_url: str, ms: int = 0) -> httpx.Response:
    return httpx.post(host_url + "/team/who", json={"ms": ms}, timeout=30)


def serving(url: str, version: int) -> dict[str, object] | None:
    """What ``/team/who`` answers at ``url`` once it is ``version``, else None."""
    try:
        answer = who(url)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200 or answer.json()["version"] != version:
        return None
    return dict(answer.json())


def running(host: HostProcess) -> list[tuple[str, int]]:
    """The services ``host`` runs, each with its deployment version."""
    index = httpx.get(host.url + "/", timeout=10).json()["services"]
    return [(s["name"], s["version"]) for s in index]


def test_what_one_host_deploys_the_other_follows_live(
    team: list[HostProcess], tmp_path: Path
) -> None:
    a, b = team
    a.deploy(f"{write_service(tmp_path / 'v1', 1)}:Team", "team")
    assert who(a.url).json()["home"] == "a"  # the deploy returns once a serves it
    started = time.monotonic()
    answer = wait_for(lambda: serving(b.url, 1), "b to serve team v1", 60)
    assert answer["home"] == "b", "b's own worker answers, not a proxy to a"
    progress = f"b followed in {time.monotonic() - started:.1f} s"
    print(progress)
    # the same version record on both: b wrote nothing of its own
    for host in team:
        described = httpx.get(f"{host.url}/api/v1/deployments/team", headers=a.admin).json()
        assert [v["version"] for v in described["versions"]] == [1], progress
        assert described["current_version"] == 1

    # a new version deployed through b: a rolls it out while it is called, and no call fails
    answers: list[tuple[int, int]] = []
    stop = threading.Event()

    def call_a() -> None:
        while not stop.is_set():
            try:
                response = who(a.url)
            except httpx.HTTPError as exc:
                answers.append((599, 0))  # no answer at all: as much a failure
                print(f"a call failed: {exc!r}")
                continue
            answers.append(
                (response.status_code, response.json().get("version", 0))
                if response.status_code == 200
                else (response.status_code, 0)
            )

    caller = threading.Thread(target=call_a)
    caller.start()
    try:
        b.deploy(f"{write_service(tmp_path / 'v2', 2)}:Team", "team")
        wait_for(lambda: answers and answers[-1] == (200, 2), "a to serve team v2", 60)
    finally:
        stop.set()
        caller.join(30)
    assert {status for status, _ in answers} == {200}, answers
    versions = [version for _, version in answers]
    assert versions == sorted(versions) and versions[0] == 1, "one switch, never back"

    # a version that loads on a but not on b: b keeps serving the one before, and says why
    a.deploy(f"{write_service(tmp_path / 'v3', 3, fail_on='b')}:Team", "team")
    assert who(a.url).json()["version"] == 3

    def b_failed() -> list[dict[str, str]]:
        described = httpx.get(f"{b.url}/api/v1/deployments/team", headers=b.admin).json()
        return [e for e in described["events"] if e["event"] == "replica_start_failed"]

    events = wait_for(b_failed, "b to try team v3", 30)
    assert "does not load on host b" in events[0]["reason"]
    assert who(b.url).json()["version"] == 2
    # rolled back through a (a new version, v2's code): b follows again
    a.cli("rollback", "team")
    assert who(a.url).json()["version"] == 2
    wait_for(lambda: running(b) == [("team", 4)], "b to run team v4 (v2's code)", 60)
    assert who(b.url).json()["version"] == 2

    # scaled through b: a runs as many replicas
    b.cli("scale", "team", "2")
    wait_for(lambda: len(a.worker_pids("team")) == 2, "a to scale team to 2 replicas", 60)
    assert len(b.worker_pids("team")) == 2

    # the desired state unreadable (its table renamed away): both keep serving what they run
    database = sa.create_engine(a.env["SHIPYARD_DB_URL"])
    try:
        with database.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE deployments RENAME TO deployments_away")
        for host in team:
            wait_for(
                lambda h=host: "cannot read the desired deployments" in h.log.read_text(),
                f"{host.home.name} to find the desired state unreadable",
                30,
            )
            assert who(host.url).json()["version"] == 2
            assert len(workers_of_home(host.home)) == 2  # (the admin API cannot answer now)
        with database.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE deployments_away RENAME TO deployments")
    finally:
        database.dispose()
    for host in team:
        wait_for(lambda h=host: "readable again" in h.log.read_text(), "the state back", 30)

    # undeployed through a: b stops it and its workers
    a.cli("undeploy", "team")
    wait_for(lambda: who(b.url).status_code == 404, "b to undeploy team", 30)
    wait_for(lambda: not workers_of_home(b.home), "b's team workers to exit", 30)


def test_a_development_loop_stays_on_its_own_host(
    team: list[HostProcess], shared: dict[str, str], tmp_path: Path
) -> None:
    a, b = team
    file = write_service(tmp_path / "dev", 1)
    args = (f"{file}:Team", "--name", "team", "--reconcile-interval", INTERVAL)
    dev = HostProcess(tmp_path / "c", env=shared, args=args).start()
    try:
        wait_for(lambda: serving(dev.url, 1), "the development loop to serve team", 60)
        # deployed after it: once b serves this, b has read the state that has the dev version
        a.deploy(f"{write_service(tmp_path / 'other', 7)}:Team", "other")
        wait_for(lambda: running(b) == [("other", 1)], "b to follow the plain deploy", 60)
        assert running(a) == [("other", 1)], "neither host runs the loop's version"
        for host in team:
            assert httpx.get(host.url + "/readyz").status_code == 200, "nor waits for it"
    finally:
        dev.stop()


def test_kill_9_of_one_host_under_load_fails_only_its_requests_in_flight(
    team: list[HostProcess], tmp_path: Path
) -> None:
    nginx_binary = server_url("SHIPYARD_TEST_NGINX")
    a, b = team
    a.deploy(f"{write_service(tmp_path / 'v1', 1)}:Team", "team", "--replicas", "2")
    wait_for(lambda: serving(b.url, 1), "b to serve team", 60)
    nginx = Nginx(nginx_binary, tmp_path / "nginx", [a.port, b.port]).start()
    try:
        homes = {who(nginx.url).json()["home"] for _ in range(10)}
        assert homes == {"a", "b"}, "nginx sends calls to both hosts"

        concurrency, seconds = 8, 12
        out = tmp_path / "load"
        load = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "loadtest", f"{nginx.url}/team/who",
             "--json", '{"ms": 20}', "--concurrency", str(concurrency),
             "--duration", f"{seconds}s", "--max-requests", "50000", "--timeout", "10s",
             "--out", str(out)],
            env=a.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            # kill a once the load has run a few seconds
            wait_for(lambda: _calls_seen(nginx) > 300, "the load test to send calls", 30)
            assert a.proc is not None
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(30)
            output, _ = load.communicate(timeout=seconds + 60)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        assert load.returncode == 0, output
        summary = json.loads((out / "summary.json").read_text())
        rows = list(csv.DictReader((out / "seconds.csv").read_text().splitlines()))
        print(f"{summary['responses']} answers, {failed_text(summary)}; per second: {rows}")

        # the calls a had in flight failed (nginx does not send a POST twice), no others
        failed = summary["errors"]
        assert failed <= concurrency, (summary, output)
        assert set(summary["errors_by_status"]) <= {"502"}, summary
        assert summary["errors_by_exception"] == {}, summary
        assert summary["responses"] - failed > 500, summary
        # the failures all fell in the second of the kill (or the next): b kept serving
        failing = [int(r["second"]) for r in rows if int(r["errors"]) > 0]
        assert len(failing) <= 2 and (not failing or failing[-1] - failing[0] <= 1), rows
        after = [r for r in rows if failing and int(r["second"]) > failing[-1]]
        assert all(int(r["requests"]) > 0 and int(r["errors"]) == 0 for r in after), rows
        assert who(nginx.url).json()["home"] == "b"
    finally:
        nginx.stop()

    # a's workers died with it (parent death); b's run on
    wait_for(lambda: not workers_of_home(a.home), "a's workers to die with it", 30)
    theirs = workers_of_home(b.home)
    assert len(theirs) == 2
    # a leftover of a that survived it (as a worker whose service cleared its parent-death
    # signal would): a process started with a's host id, as the host starts its workers
    dead_id = json.loads((a.home / "serve" / "host.json").read_text())["id"]
    leftover = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)",
         "shipyard.serve.worker", "--host-id", dead_id],
    )  # fmt: skip
    try:
        # a restarted on its home stops its own leftover, and nothing of b's
        a.start()
        assert leftover.wait(30) == -signal.SIGKILL
        a.wait_ready()
        assert who(a.url).json()["home"] == "a"
        assert all(alive(pid, started) for pid, started in theirs.items()), "b's workers live"
        assert who(b.url).json()["home"] == "b"
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def failed_text(summary: dict[str, object]) -> str:
    return f"{summary['errors']} failed {summary['errors_by_status']}"


def _calls_seen(nginx: Nginx) -> int:
    """How many calls nginx has logged."""
    path = nginx.directory / "access.log"
    return path.read_text().count("/team/who") if path.exists() else 0
