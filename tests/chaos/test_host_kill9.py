"""kill -9 of the host: its workers go with it, and the restarted host brings back the same
workers (no duplicates), answers /healthz while a slow load() still runs, and stops the
leftovers of its predecessor that survived (their parent-death signal cleared).

Count-based: every wait is a poll of /proc or of the host with a deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.serve import isolation
from support.host_processes import (
    Gate,
    Host,
    alive,
    deadline_poll,
    deployed,
    workers_of_home,
    write_services,
)

#: /healthz polls (20 ms apart) a restarted host may take to answer, while a load() waits
HEALTHZ_POLLS = 1500


@pytest.fixture
def gate() -> Iterator[Gate]:
    made = Gate()
    yield made
    made.shut()


@pytest.fixture
def code(tmp_path: Path) -> Path:
    return write_services(tmp_path / "code")


def test_kill9_takes_the_workers_and_the_restart_brings_back_as_many(
    tmp_path: Path, gate: Gate, code: Path
) -> None:
    home = tmp_path / "home"
    host = Host(home, gate)
    gate.open()
    host.start()
    try:
        # "held" is restored first (by name): one after another, "quick" would wait for it
        deployed(host.deploy(code, "Fast", "quick", 2))
        deployed(host.deploy(code, "Slow", "held", 2))
        before = workers_of_home(home)
        assert len(before) == 4
        # the workers isolate themselves where the host can: this is the isolated path then
        detail = host.readyz().json()
        assert detail["isolation"]["isolated"] is isolation.detect().isolated

        host.kill9()
        # a process on its way out has no command line before it stops being alive: poll
        # for both, not one then the other
        deadline_poll(
            lambda: (
                not workers_of_home(home)
                and not any(alive(pid, started) for pid, started in before.items())
            ),
            "every worker of the killed host gone",
        )

        gate.close_gate()  # the restored slow replicas now wait in load()
        polls = host.start()
        assert polls <= HEALTHZ_POLLS
        # the deployments come back at once: "quick" is ready while both replicas of "held"
        # still wait in load(), and the host answers meanwhile: /healthz ok, /readyz 503
        # naming the one not back yet
        deadline_poll(lambda: gate.waiting == 2, "both held replicas waiting in load()")
        deadline_poll(
            lambda: host.readyz().json()["not_ready"] == ["held"], "quick back before held"
        )
        assert host.readyz().status_code == 503
        assert gate.waiting == 2

        # killed again while the slow replicas are in load(), not yet connected to it: the
        # kernel's parent-death signal alone takes them (after they isolated themselves)
        loading = workers_of_home(home)
        assert len(loading) == 4
        host.kill9()
        deadline_poll(lambda: not workers_of_home(home), "the loading workers gone too")

        gate.open()
        host.start()
        deadline_poll(lambda: host.readyz().status_code == 200, "every deployment back")
        after = workers_of_home(home)
        assert len(after) == 4  # the same count: no duplicates
        assert not set(after) & (set(before) | set(loading))
    finally:
        host.stop()
    deadline_poll(lambda: not workers_of_home(home), "the workers stopped with the host")
    assert not (home / "serve" / "host.json").exists()  # a clean stop leaves no record


def test_the_restarted_host_stops_its_leftovers(tmp_path: Path, gate: Gate, code: Path) -> None:
    home = tmp_path / "home"
    host = Host(home, gate)
    host.start()
    try:
        # a worker in load() with its parent-death signal cleared: only the next host can
        # stop it. The host recorded it (pid and start time) when it started it.
        stuck = host.deploy(code, "Stubborn", "stubborn", 1)
        deadline_poll(lambda: gate.waiting == 1, "the stubborn worker waiting in load()")
        record = json.loads((home / "serve" / "host.json").read_text())
        assert (home / "serve" / "host.json").stat().st_mode & 0o777 == 0o600
        [leftover] = [(w["pid"], w["start_time"]) for w in record["workers"]]
        assert workers_of_home(home) == {leftover[0]: leftover[1]}

        host.kill9()
        stuck.communicate(timeout=60)
        assert alive(*leftover)  # the fault: it outlived its host

        host.start()  # claiming the home stops it before the host answers at all
        assert not alive(*leftover)
        restarted = json.loads((home / "serve" / "host.json").read_text())
        assert restarted["id"] != record["id"]
        assert host.proc is not None and restarted["pid"] == host.proc.pid
    finally:
        gate.open()
        host.stop()
    deadline_poll(lambda: not workers_of_home(home), "no worker of this home left")
