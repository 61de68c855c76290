"""``shipyard schedule ...`` and ``shipyard backfill`` end to end on SQLite: the runs are
real processes started from the schedule's code snapshot by the scheduler's launcher."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shipyard.cli.main import main
from shipyard.client import Flow, Run
from shipyard.keys import KeyStore
from shipyard.schedules.records import FireKind, FireStatus
from shipyard.schedules.scheduler import Scheduler
from shipyard.schedules.store import ScheduleStore
from shipyard.store.meta import MetaStore

FLOW = """
from shipyard import FlowSpec, Parameter, current, schedule, step


@schedule(cron="0 6 * * *", timezone="Europe/Amsterdam", overlap="queue")
class NightlyFlow(FlowSpec):
    alpha = Parameter("alpha", default="0.5")

    @step
    def start(self):
        trigger = current.trigger
        self.kind = trigger.type if trigger else None  # None: started by hand
        self.scheduled_for = trigger.scheduled_for if trigger else None
        self.got = self.alpha
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def shipyard(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def flow_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "SHIPYARD_KEY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "flows" / "nightly_flow.py"
    path.parent.mkdir()
    path.write_text(FLOW)
    return path


@pytest.fixture
def store(flow_file: Path) -> Iterator[ScheduleStore]:
    with MetaStore.open() as meta:
        yield ScheduleStore(meta)


def admin_key(store: ScheduleStore, monkeypatch: pytest.MonkeyPatch) -> str:
    with KeyStore(store.meta) as keys:
        _, plaintext = keys.create("ops", ["admin"])
        _, other = keys.create("web", ["invoke:*"])
    monkeypatch.setenv("SHIPYARD_KEY", other)
    refused = shipyard("schedule", "pause", "NightlyFlow", "--note", "x")
    assert refused.exit_code == 1 and "not a valid admin key" in refused.output
    monkeypatch.setenv("SHIPYARD_KEY", plaintext)
    return plaintext


def settle(sched: Scheduler, store: ScheduleStore, count: int, timeout: float = 90) -> None:
    """Tick until ``count`` fire records of NightlyFlow have finished runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sched.tick()
        done = [f for f in store.fires("NightlyFlow", limit=100) if f.exit_code is not None]
        if len(done) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"runs did not finish: {store.fires('NightlyFlow')}")


def test_schedule_commands_end_to_end(
    flow_file: Path, store: ScheduleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_key = shipyard("schedule", "create", str(flow_file))
    assert no_key.exit_code == 1 and "needs an admin key" in no_key.output
    admin_key(store, monkeypatch)

    created = shipyard("schedule", "create", str(flow_file))
    assert created.exit_code == 0, created.output
    assert "schedule 'NightlyFlow' version 1: NightlyFlow, cron '0 6 * * *' (Europe/Amsterdam)" in (
        created.output
    )
    again = shipyard("schedule", "create", str(flow_file), "--overlap", "allow")
    assert "version 2" in again.output
    assert store.get("NightlyFlow").current.policies.overlap == "allow"  # the flag wins
    assert store.get("NightlyFlow").current.parameters == {"alpha": "0.5"}

    listed = shipyard("schedule", "list")
    assert "NightlyFlow" in listed.output and "active" in listed.output
    upcoming = shipyard("schedule", "next", "NightlyFlow", "-n", "3").output.splitlines()
    assert len(upcoming) == 3
    assert all("06:00 CET" in line or "06:00 CEST" in line for line in upcoming)

    bad = shipyard("schedule", "create", str(flow_file), "--cron", "0 6 * *")
    assert bad.exit_code == 2 and "4 fields, expected 5" in bad.output

    # run now, with a parameter: a real process from the code snapshot
    fired = shipyard("schedule", "trigger", "NightlyFlow", "--param", "alpha=0.9")
    assert fired.exit_code == 0 and "starts it on its next tick" in fired.output
    flow_file.write_text(FLOW.replace('default="0.5"', 'default="changed"'))  # snapshot wins
    sched = Scheduler(store)
    try:
        check_runs(sched, store)
    finally:
        sched.starter.close()  # type: ignore[attr-defined]
    assert not sched.starter.children  # type: ignore[attr-defined]

    paused = shipyard("schedule", "pause", "NightlyFlow", "--note", "feed broken, INC-12")
    assert paused.exit_code == 0
    assert "paused: feed broken, INC-12" in shipyard("schedule", "list").output
    assert "feed broken, INC-12" in shipyard("schedule", "show", "NightlyFlow").output
    assert shipyard("schedule", "resume", "NightlyFlow").exit_code == 0
    assert not store.get("NightlyFlow").paused
    assert shipyard("schedule", "delete", "NightlyFlow").exit_code == 0
    gone = shipyard("schedule", "show", "NightlyFlow")
    assert gone.exit_code == 1 and "no schedule named 'NightlyFlow'" in gone.output

    # a run started by hand has no trigger
    subprocess.run([sys.executable, "-m", "shipyard", "run", str(flow_file), "-q"], check=True)
    plain = Flow("NightlyFlow").latest_run
    assert plain is not None and plain.trigger is None
    assert plain["start"].task.data.kind is None


def check_runs(sched: Scheduler, store: ScheduleStore) -> None:
    settle(sched, store, 1)
    (fire,) = store.fires("NightlyFlow")
    assert fire.kind == FireKind.MANUAL and fire.status == FireStatus.STARTED
    assert fire.exit_code == 0 and fire.run_id is not None
    run = Run(f"NightlyFlow/{fire.run_id}")
    assert run.successful
    assert run["start"].task.data.kind == "manual"
    assert run["start"].task.data.got == "0.9"
    assert run.trigger is not None and run.trigger["type"] == "manual"
    assert run.trigger["schedule"] == "NightlyFlow" and run.trigger["fire_id"] == fire.id

    # backfill: one run per fire time, at most 2 at once; the same backfill twice is a no-op
    args = ["backfill", "NightlyFlow", "--start", "2026-03-28", "--end", "2026-03-30T23:00"]
    dry = shipyard(*args, "--dry-run")
    assert "would create 3 backfill run(s)" in dry.output
    assert "2026-03-29 04:00:00Z" in dry.output  # 06:00 CEST, the day the clocks change
    assert store.fires("NightlyFlow", kind=FireKind.BACKFILL) == []
    first = shipyard(*args, "--max-parallel", "2")
    assert "created 3 backfill run(s) of 'NightlyFlow'; 0 already exist" in first.output
    second = shipyard(*args)
    assert "created 0 backfill run(s) of 'NightlyFlow'; 3 already exist" in second.output
    result = sched.tick()
    assert len(result.started) == 2 and len(result.queued) == 1
    queued = store.fire(result.queued[0])
    assert queued.reason == "backfill: 2 running (--max-parallel 2)"
    settle(sched, store, 4)
    backfilled = store.fires("NightlyFlow", kind=FireKind.BACKFILL)
    assert len(backfilled) == 3 and all(f.exit_code == 0 for f in backfilled)
    for f in backfilled:
        data = Run(f"NightlyFlow/{f.run_id}")["start"].task.data
        assert data.kind == "backfill" and data.scheduled_for == f.scheduled_for

    shown = shipyard("schedule", "show", "NightlyFlow").output
    assert "versions:" in shown and "backfill" in shown and "manual" in shown


def test_a_bad_decorator_is_named_with_its_line(
    flow_file: Path, store: ScheduleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin_key(store, monkeypatch)
    flow_file.write_text(FLOW.replace('cron="0 6 * * *"', 'cron="0 6 * * MON-"'))
    bad = shipyard("schedule", "create", str(flow_file))
    assert bad.exit_code == 2
    assert f"{flow_file}:5: @schedule: cron '0 6 * * MON-': field 'day of week'" in bad.output
    assert store.list() == []
    flow_file.write_text(FLOW.replace('overlap="queue"', 'overlap="never"'))
    bad = shipyard("schedule", "create", str(flow_file))
    assert bad.exit_code == 2 and "overlap='never': choose one of 'skip', 'queue'" in bad.output
    flow_file.write_text(FLOW.replace('overlap="queue"', 'overlap="queue", overlap="skip"'))
    bad = shipyard("schedule", "create", str(flow_file))
    assert bad.exit_code == 2
    assert f"{flow_file}:5: keyword argument repeated: overlap" in bad.output


def test_pause_help_says_paused_fire_times_are_recorded_as_skips() -> None:
    """What pause does (README, Pauses): each fire time is still recorded, as skipped."""
    text = " ".join(
        CliRunner()
        .invoke(main, ["schedule", "pause", "--help"], catch_exceptions=False)
        .output.split()
    )
    assert "recorded, once, as skipped with the reason 'paused: NOTE'" in text
    assert "not due" not in text
