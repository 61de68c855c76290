"""Gaps closed in the scheduler: ``overlap="cancel-previous"`` whichever host launched the
previous run (a cancel request on its row, polled by its launcher), the lease timed by the
database's clock on PostgreSQL (clock skew between hosts does not matter), and the global
cap's setting (``max_scheduled_runs``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from shipyard.cli.main import main
from shipyard.config import ConfigError, settings
from shipyard.schedules.manage import create
from shipyard.schedules.records import FireKind, FireStatus
from shipyard.schedules.scheduler import Scheduler, Spawner
from shipyard.schedules.store import ScheduleStore, fire_row
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.store.records import RunStatus
from shipyard.store.schema import schedule_fires
from support.schedules import InProcessStarter, WallClock, add_schedule
from support.servers import pg_schema_url


@pytest.fixture
def pg_url(pg_database: sa.URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "SHIPYARD_HEARTBEAT_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    yield pg_schema_url(pg_database)


@pytest.mark.postgres
def test_skewed_clocks_do_not_steal_the_lease(pg_url: str) -> None:
    """Two schedulers whose clocks are an hour apart each way (far more than the 15 s TTL):
    with the lease timed by the database, only the first ever ticks until it stops; with
    their own clocks, the one ahead would take the lease at once and both would tick."""
    with MetaStore.open(pg_url) as a_meta, MetaStore.open(pg_url) as b_meta:
        behind = Scheduler(
            ScheduleStore(a_meta),
            clock=lambda: datetime.now(UTC) - timedelta(hours=1),
            starter=lambda fire, token: None,
            holder="behind",
            announce=lambda _: None,
        )
        ahead = Scheduler(
            ScheduleStore(b_meta),
            clock=lambda: datetime.now(UTC) + timedelta(hours=1),
            starter=lambda fire, token: None,
            holder="ahead",
            announce=lambda _: None,
        )
        for _ in range(5):
            assert [behind.tick().leader, ahead.tick().leader] == [True, False]
        held = ahead.store.lease()
        assert held is not None and held[0] == "behind"
        # the expiry is the database's now + 15 s: neither host's skewed clock
        assert abs(held[1] - datetime.now(UTC) - timedelta(seconds=15)) < timedelta(seconds=5)
        behind.store.release_lease("behind")  # it stops: the other takes over
        assert [ahead.tick().leader, behind.tick().leader] == [True, False]
        # the same two on their own clocks: the one ahead takes the live lease at once
        ahead.store.release_lease("ahead")
        local = [ScheduleStore(m, db_clock=False) for m in (a_meta, b_meta)]
        assert local[0].acquire_lease("x", ttl=timedelta(seconds=15), now=behind.clock())
        assert local[1].acquire_lease("y", ttl=timedelta(seconds=15), now=ahead.clock())


def test_cancel_previous_waits_for_a_run_whose_launcher_died(
    meta: MetaStore, wall: WallClock
) -> None:
    """The previous run's launcher (on another host) is gone and its run's heartbeat stops:
    the cancel request is never acted on, and the new fire time waits only until the run
    counts as DEAD (its dead_after), then starts."""
    store = ScheduleStore(meta)
    add_schedule(store, "c", "*/5 * * * *", now=wall(), overlap="cancel-previous")
    first = InProcessStarter(store, wall, pid=1)
    wall.advance(minutes=5)
    Scheduler(store, clock=wall, starter=first, holder="a", use_lease=False).tick()
    (old,) = first.started
    with store.writer.begin() as conn:  # its launcher runs on another host
        conn.execute(
            schedule_fires.update().where(schedule_fires.c.id == old.id).values(host="elsewhere")
        )
    second = InProcessStarter(store, wall)
    other = Scheduler(store, clock=wall, starter=second, holder="b", use_lease=False)
    wall.advance(minutes=5)
    other.tick()
    assert store.cancel_requested(old.id)
    new = next(f for f in store.fires("c") if f.id != old.id)
    assert new.status == FireStatus.QUEUED
    assert new.reason == f"overlap=cancel-previous: stopping TickFlow/{first.runs[old.id]}"
    run = meta.get_run_by_id(first.runs[old.id])
    assert run is not None and run.heartbeat_at is not None
    wall.at(run.heartbeat_at + meta.dead_after - timedelta(seconds=1))
    other.tick()  # its heartbeat is still fresh: still waiting
    assert store.fire(new.id).status == FireStatus.QUEUED and not second.started
    wall.at(run.heartbeat_at + meta.dead_after + timedelta(seconds=1))
    other.tick()  # DEAD: the new one starts
    assert [f.id for f in second.started] == [new.id]


FLOW = """
import time

from shipyard import FlowSpec, schedule, step


@schedule(cron="0 0 1 1 *", overlap="cancel-previous")
class HoldFlow(FlowSpec):
    @step
    def start(self):
        time.sleep(60)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _wait(what: str, ready: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
def test_cancel_previous_stops_a_run_launched_by_another_scheduler(
    pg_url: str, tmp_path: Path
) -> None:
    """Scheduler A spawns a real launcher; scheduler B (another store, another holder, and
    the launcher's host recorded as another one, so B cannot signal it) dispatches the next
    fire time: it records a cancel request and queues; the launcher polls its row, SIGTERMs
    its run, which ends killed; only then does B start the next one. Never two at once."""
    flow = tmp_path / "hold_flow.py"
    flow.write_text(FLOW)
    with MetaStore.open(pg_url) as a_meta, MetaStore.open(pg_url) as b_meta:
        a_store, b_store = ScheduleStore(a_meta), ScheduleStore(b_meta)
        now = datetime.now(UTC)
        create(
            a_store,
            flow,
            name=None,
            user="test",
            now=now,
            blobs=open_blob_store(settings().store_url),
        )
        a_spawn, b_spawn = Spawner(a_store), Spawner(b_store)
        a = Scheduler(a_store, starter=a_spawn, holder="a", use_lease=False)
        b = Scheduler(b_store, starter=b_spawn, holder="b", use_lease=False)

        def due(minute: int) -> int:
            when = datetime(2026, 1, 1, 0, minute, tzinfo=UTC)
            row = fire_row(
                schedule="HoldFlow",
                version=1,
                kind=FireKind.SCHEDULE,
                scheduled_for=when,
                due_at=datetime.now(UTC),
                now=datetime.now(UTC),
            )
            a_store.add_fires([row])
            return next(f.id for f in a_store.fires("HoldFlow") if f.scheduled_for == when)

        try:
            first = due(0)
            assert a.tick().started == [first]

            def running(fire_id: int) -> bool:
                fire = a_store.fire(fire_id)
                if fire.run_id is None:
                    return False
                run = a_meta.get_run_by_id(fire.run_id)
                return run is not None and run.status == RunStatus.RUNNING

            _wait("the first run", lambda: running(first))
            with a_store.writer.begin() as conn:  # as a launcher on another host records it
                conn.execute(
                    schedule_fires.update()
                    .where(schedule_fires.c.id == first)
                    .values(host="another-host")
                )
            second = due(5)
            asked = time.monotonic()
            result = b.tick()
            assert result.started == [] and result.queued == [second]
            run_id = a_store.fire(first).run_id
            assert b_store.fire(second).reason == (
                f"overlap=cancel-previous: stopping HoldFlow/{run_id}"
            )
            while True:  # never two at once: the second starts once the first has ended
                started = b.tick().started
                run = a_meta.get_run_by_id(run_id or 0)
                assert run is not None
                if started:
                    assert started == [second] and run.status == RunStatus.KILLED
                    break
                assert b_store.fire(second).status == FireStatus.QUEUED
                assert time.monotonic() - asked < 20, "the launcher did not stop its run"
                time.sleep(0.2)
            _wait("the first launcher", lambda: a_store.fire(first).finished_at is not None)
            assert a_store.fire(first).exit_code != 0
            # a cancel request before or while the next run goes stops it too
            b_store.request_cancel([second], now=datetime.now(UTC))
            _wait("the second launcher", lambda: b_store.fire(second).finished_at is not None)
        finally:
            for spawner in (a_spawn, b_spawn):
                for child in spawner.children:
                    child.kill()
                spawner.close(timeout=5)


def test_max_scheduled_runs_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SHIPYARD_MAX_SCHEDULED_RUNS", raising=False)
    assert settings().max_scheduled_runs == 16
    (tmp_path / "home" / "config.yaml").write_text("max_scheduled_runs: 3\n")
    assert settings().max_scheduled_runs == 3
    monkeypatch.setenv("SHIPYARD_MAX_SCHEDULED_RUNS", "5")
    assert settings().max_scheduled_runs == 5
    assert settings(max_scheduled_runs=2).max_scheduled_runs == 2
    monkeypatch.setenv("SHIPYARD_MAX_SCHEDULED_RUNS", "lots")
    with pytest.raises(ConfigError, match="SHIPYARD_MAX_SCHEDULED_RUNS .* got 'lots'"):
        settings()
    from shipyard.cli.schedules import scheduled_runs_cap

    monkeypatch.setenv("SHIPYARD_MAX_SCHEDULED_RUNS", "4")
    assert scheduled_runs_cap(None, "--max-running") == 4
    assert scheduled_runs_cap(7, "--max-running") == 7
    monkeypatch.setenv("SHIPYARD_MAX_SCHEDULED_RUNS", "0")
    got = CliRunner().invoke(main, ["scheduler"])
    assert got.exit_code == 2 and "expected a whole number >= 1, got '0'" in got.output
    got = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert got.exit_code == 2 and "--max-scheduled-runs" in got.output, got.output
    monkeypatch.delenv("SHIPYARD_MAX_SCHEDULED_RUNS")
    got = CliRunner().invoke(main, ["serve", "--max-scheduled-runs", "0"])
    assert got.exit_code == 2 and "--max-scheduled-runs" in got.output


def test_paused_fire_times_show_in_schedule_show(
    meta: MetaStore, db_url: str, wall: WallClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ScheduleStore(meta)
    add_schedule(store, "nightly", "0 * * * *", now=wall())
    store.pause("nightly", "feed broken, INC-12", user="ops", now=wall())
    sched = Scheduler(store, clock=wall, starter=InProcessStarter(store, wall))
    wall.advance(hours=2, minutes=1)
    sched.tick()
    assert [(f.status, f.reason) for f in store.fires("nightly")] == [
        (FireStatus.SKIPPED, "paused: feed broken, INC-12")
    ] * 2
    monkeypatch.setenv("SHIPYARD_DB_URL", db_url)
    shown = CliRunner().invoke(main, ["schedule", "show", "nightly"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("paused: feed broken, INC-12") == 2, shown.output
