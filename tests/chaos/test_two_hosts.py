"""Two hosts on one machine: a host that stops the leftovers of its home's previous host never
touches another home's workers, not even another dead host's leftovers; and a second host on
the same home refuses to start, saying which host runs there.

Count-based: every wait is a poll of /proc or of the host with a deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.host_processes import (
    Gate,
    Host,
    alive,
    deadline_poll,
    deployed,
    workers_of_home,
    write_services,
)


@pytest.fixture
def gate() -> Iterator[Gate]:
    made = Gate()
    yield made
    made.shut()


def _leave_a_leftover(host: Host, code: Path, gate: Gate, waiting: int) -> tuple[int, int]:
    """Start a stubborn worker on ``host`` (held in load()), kill -9 the host; the worker
    stays. Returns its pid and start time."""
    stuck = host.deploy(code, "Stubborn", "stubborn", 1)
    deadline_poll(lambda: gate.waiting == waiting, "the stubborn worker waiting in load()")
    record = json.loads((host.home / "serve" / "host.json").read_text())
    [leftover] = [(w["pid"], w["start_time"]) for w in record["workers"]]
    host.kill9()
    stuck.communicate(timeout=60)
    assert alive(*leftover)
    return leftover


def test_a_host_stops_only_its_own_homes_leftovers(tmp_path: Path, gate: Gate) -> None:
    code = write_services(tmp_path / "code")
    serving = Host(tmp_path / "serving", gate)  # a host that keeps running, with 2 workers
    one, other = Host(tmp_path / "one", gate), Host(tmp_path / "other", gate)
    try:
        gate.open()
        serving.start()
        deployed(serving.deploy(code, "Fast", "fast", 2))
        running = workers_of_home(serving.home)
        assert len(running) == 2

        gate.close_gate()
        one.start()
        other.start()
        mine = _leave_a_leftover(one, code, gate, waiting=1)
        theirs = _leave_a_leftover(other, code, gate, waiting=2)

        one.start()  # stops the leftover of its own home, and nothing else
        assert not alive(*mine)
        assert alive(*theirs)
        assert all(alive(pid, started) for pid, started in running.items())
        assert workers_of_home(serving.home) == running

        other.start()
        assert not alive(*theirs)
        assert workers_of_home(serving.home) == running
    finally:
        gate.open()
        for host in (serving, one, other):
            host.stop()
    for host in (serving, one, other):
        deadline_poll(lambda h=host: not workers_of_home(h.home), f"no worker of {host.home}")


def test_a_second_host_on_the_same_home_refuses_to_start(tmp_path: Path, gate: Gate) -> None:
    home = tmp_path / "home"
    first, second = Host(home, gate), Host(home, gate)
    first.start()
    try:
        refused = second.launch()
        assert refused.wait(60) != 0
        said = second.log.read_text()
        assert first.proc is not None
        assert f"another shipyard host is running on {home} (pid {first.proc.pid})" in said
        assert "SHIPYARD_HOME" in said
        # the first host is untouched: its record is its own and it still answers
        record = json.loads((home / "serve" / "host.json").read_text())
        assert record["pid"] == first.proc.pid
        assert first.readyz().status_code == 200
    finally:
        first.stop()
