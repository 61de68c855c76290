"""``shipyard event publish`` to real runs on SQLite: the event starts RankerFlow with the
mapped parameter and ``current.trigger`` of type event; its end starts ReportFlow
(``@trigger_on_finish``) with ``current.trigger`` of type flow naming the upstream run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shipyard.cli.main import main
from shipyard.client import Run
from shipyard.keys import KeyStore
from shipyard.schedules.records import FireKind, FireRecord
from shipyard.schedules.scheduler import Scheduler
from shipyard.schedules.store import ScheduleStore
from shipyard.store.meta import MetaStore

RANKER = """
from shipyard import FlowSpec, Parameter, current, step, trigger


@trigger(event={"name": "ratings-updated", "parameters": {"day": "date"}})
class RankerFlow(FlowSpec):
    day = Parameter("day", default="never")

    @step
    def start(self):
        self.kind = current.trigger.type
        self.event = current.trigger.event
        self.payload = current.trigger.payload
        self.got = self.day
        self.next(self.end)

    @step
    def end(self):
        pass
"""

REPORT = """
from shipyard import FlowSpec, current, step, trigger_on_finish


@trigger_on_finish(flow="RankerFlow")
class ReportFlow(FlowSpec):
    @step
    def start(self):
        self.kind = current.trigger.type
        self.upstream = current.trigger.upstream_run
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def shipyard(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ScheduleStore]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "SHIPYARD_KEY"):
        monkeypatch.delenv(name, raising=False)
    with MetaStore.open() as meta:
        yield ScheduleStore(meta)


def finished(sched: Scheduler, store: ScheduleStore, name: str, timeout: float = 60) -> FireRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sched.tick()
        done = [f for f in store.fires(name) if f.exit_code is not None]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no run of {name} finished: {store.fires(name)}")


def test_a_published_event_runs_its_flow_and_the_chain_after_it(
    store: ScheduleStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with KeyStore(store.meta) as keys:
        _, admin = keys.create("ops", ["admin"])
        _, publisher = keys.create("feed", ["events:publish"])
    for name, text in (("ranker_flow.py", RANKER), ("report_flow.py", REPORT)):
        (tmp_path / name).write_text(text)
        made = shipyard("schedule", "create", str(tmp_path / name), "--key", admin)
        assert made.exit_code == 0, made.output
        assert "  triggers: " in made.output

    monkeypatch.setenv("SHIPYARD_KEY", publisher)
    refused = shipyard("schedule", "trigger", "RankerFlow")  # the scope publishes, only
    assert refused.exit_code == 1 and "not a valid admin key" in refused.output
    bad = shipyard("event", "publish", "ratings-updated", "--payload", "{date: 1}")
    assert bad.exit_code == 2 and "--payload" in bad.output and "not JSON" in bad.output
    published = shipyard(
        "event", "publish", "ratings-updated", "--payload", '{"date": "2026-03-01"}'
    )
    assert published.exit_code == 0, published.output
    assert "schedules waiting for it: RankerFlow" in published.output

    sched = Scheduler(store)
    try:
        ranked = finished(sched, store, "RankerFlow")
        assert ranked.kind == FireKind.EVENT and ranked.exit_code == 0
        data = Run(f"RankerFlow/{ranked.run_id}")["start"].task.data
        assert (data.kind, data.event, data.got) == ("event", "ratings-updated", "2026-03-01")
        assert data.payload == {"date": "2026-03-01"}
        report = finished(sched, store, "ReportFlow")
    finally:
        sched.starter.close()  # type: ignore[attr-defined]
    assert report.kind == FireKind.FLOW and report.exit_code == 0
    run = Run(f"ReportFlow/{report.run_id}")
    assert run["start"].task.data.kind == "flow"
    assert run["start"].task.data.upstream == f"RankerFlow/{ranked.run_id}"
    assert run.trigger is not None and run.trigger["upstream_run"] == f"RankerFlow/{ranked.run_id}"
    shown = shipyard("schedule", "show", "RankerFlow").output
    assert "triggers: event ratings-updated (day <- date)" in shown
    assert "ratings-updated #1" in shown
    shown = shipyard("schedule", "show", "ReportFlow").output
    assert "triggers: after RankerFlow (success)" in shown
    assert f"RankerFlow/{ranked.run_id}" in shown
    listed = shipyard("event", "list")
    assert "ratings-updated" in listed.output and "RankerFlow (started)" in listed.output
