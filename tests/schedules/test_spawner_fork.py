"""The spawner: each scheduled run's launcher is forked from one fresh single-threaded
process (never from the scheduler's, which has threads), the run is forked from the
launcher (no second interpreter), each fire gets its own environment, and a spawner that
was killed is replaced without losing the next fire."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipyard.client import Run
from shipyard.config import settings
from shipyard.schedules.manage import create, trigger_now
from shipyard.schedules.records import FireRecord
from shipyard.schedules.scheduler import Scheduler, Spawner
from shipyard.schedules.store import ScheduleStore
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore

FLOW = """
import os
import time

from shipyard import FlowSpec, schedule, step


@schedule(cron="0 6 * * *")
class ForkedFlow(FlowSpec):
    @step
    def start(self):
        self.mark = os.environ.get("SHIPYARD_SPAWN_MARK")
        time.sleep(1.5)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for {pid}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if _ppid(int(entry.name)) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return found


def _wait(what: str, done: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.05)


def test_runs_fork_from_the_spawner_which_is_replaced_when_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    flow = tmp_path / "forked_flow.py"
    flow.write_text(FLOW)
    marks = iter(["first", "second"])

    with MetaStore.open() as meta:
        store = ScheduleStore(meta)
        now = datetime.now(UTC)
        create(
            store, flow, name=None, user="t", now=now, blobs=open_blob_store(settings().store_url)
        )
        starter = Spawner(store, env=lambda: {**os.environ, "SHIPYARD_SPAWN_MARK": next(marks)})
        sched = Scheduler(store, starter=starter)

        def fire(fire_id: int) -> FireRecord:
            return store.fire(fire_id)

        try:
            first = trigger_now(store, "ForkedFlow", {}, user="t", now=datetime.now(UTC))
            assert sched.tick().started == [first]
            assert starter.server is not None
            spawner_pid = starter.server.pid
            _wait("the first launcher's start", lambda: fire(first).pid is not None)
            launcher = fire(first).pid
            assert launcher is not None
            # the launcher is the spawner's child, and the spawner has one thread
            assert _ppid(launcher) == spawner_pid != os.getpid()
            assert _threads(spawner_pid) == 1
            assert _threads(os.getpid()) >= 1
            # the run is forked from the launcher: the same program, not a new interpreter
            _wait("the run's process", lambda: bool(_children(launcher)))
            spawner_cmd = Path(f"/proc/{spawner_pid}/cmdline").read_bytes()
            for child in _children(launcher):
                assert Path(f"/proc/{child}/cmdline").read_bytes() == spawner_cmd
                assert b"shipyard.cli.spawner" in spawner_cmd
            _wait("the first run", lambda: fire(first).exit_code is not None)
            assert fire(first).exit_code == 0

            os.kill(spawner_pid, signal.SIGKILL)  # the spawner dies between two fires
            _wait(
                "the spawner's end",
                lambda: starter.server is not None and starter.server.poll() is not None,
            )
            second = trigger_now(store, "ForkedFlow", {}, user="t", now=datetime.now(UTC))
            assert sched.tick().started == [second]
            assert starter.server is not None and starter.server.pid != spawner_pid
            _wait("the second run", lambda: fire(second).exit_code is not None)
            assert fire(second).exit_code == 0
            assert _ppid(starter.server.pid) == os.getpid()
        finally:
            starter.close()
        assert not starter.children and starter.server is None

        runs = {f.id: Run(f"ForkedFlow/{f.run_id}") for f in (fire(first), fire(second))}
        assert runs[first].successful and runs[second].successful
        # each fire's own environment, not the one the spawner was started with
        assert runs[first]["start"].task.data.mark == "first"
        assert runs[second]["start"].task.data.mark == "second"
        assert runs[first].trigger is not None


def test_without_the_spawner_the_launcher_is_a_process_and_runs_shipyard_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``forking=False`` (and the fallback when no spawner can be started): the launcher is
    ``python -m shipyard.schedules.launch``, the scheduler's child, and its run a second
    interpreter; the environment is the fire's all the same."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    flow = tmp_path / "forked_flow.py"
    flow.write_text(FLOW)
    with MetaStore.open() as meta:
        store = ScheduleStore(meta)
        now = datetime.now(UTC)
        create(
            store, flow, name=None, user="t", now=now, blobs=open_blob_store(settings().store_url)
        )
        env = {**os.environ, "SHIPYARD_SPAWN_MARK": "plain"}
        starter = Spawner(store, env=lambda: env, forking=False)
        sched = Scheduler(store, starter=starter)
        try:
            fire_id = trigger_now(store, "ForkedFlow", {}, user="t", now=datetime.now(UTC))
            assert sched.tick().started == [fire_id]
            assert starter.server is None
            _wait("the launcher's start", lambda: store.fire(fire_id).pid is not None)
            launcher = store.fire(fire_id).pid
            assert launcher is not None and _ppid(launcher) == os.getpid()
            assert b"shipyard.schedules.launch" in Path(f"/proc/{launcher}/cmdline").read_bytes()
            _wait("the run", lambda: store.fire(fire_id).exit_code is not None)
        finally:
            starter.close()
        fire = store.fire(fire_id)
        assert fire.exit_code == 0
        run = Run(f"ForkedFlow/{fire.run_id}")
        assert run.successful and run["start"].task.data.mark == "plain"
