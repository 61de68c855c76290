"""Events and upstream runs fire schedules (in process: the injected clock and the in-process
starter; the real runs are in test_event_publish_run.py): the payload mapping, a recorded
skip for a missing field, exactly one record per (schedule, event) however often and by
however many schedulers it is read, @trigger_on_finish's success/failure/any, the
registry's and the cache's events, and trigger loops refused at create."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shipyard import cache
from shipyard.registry import Registry
from shipyard.schedules.errors import ScheduleDefinitionError
from shipyard.schedules.feed import Feed
from shipyard.schedules.manage import create
from shipyard.schedules.policies import Policies
from shipyard.schedules.records import FireKind, FireStatus
from shipyard.schedules.scheduler import Scheduler, reason_kind
from shipyard.schedules.store import NewVersion, ScheduleStore
from shipyard.serve.metrics import HostMetrics
from shipyard.serve.scheduling import count_tick
from shipyard.store import context
from shipyard.store.blobs import open_blob_store
from shipyard.store.events import publish_event, recent_events
from shipyard.store.meta import MetaStore
from shipyard.store.records import RunStatus, TaskStatus
from support.fakes import store_artifact
from support.schedules import InProcessStarter, WallClock


def add(
    store: ScheduleStore,
    name: str,
    triggers: list[dict[str, Any]],
    now: Any,
    *,
    flow: str = "TickFlow",
    parameters: dict[str, Any] | None = None,
    **policies: Any,
) -> None:
    store.save(
        name,
        NewVersion(
            flow_name=flow,
            code_key="0" * 64,
            module="tick_flow",
            flow_file="tick_flow.py",
            parameters=parameters or {},
            cron=None,
            timezone="UTC",
            triggers=triggers,
            policies=Policies().merged(**policies),
        ),
        user="test",
        now=now,
    )


def scheduler(
    store: ScheduleStore, wall: WallClock, **kw: Any
) -> tuple[Scheduler, InProcessStarter]:
    starter = InProcessStarter(store, wall)
    return Scheduler(store, clock=wall, starter=starter, use_lease=False, **kw), starter


RATINGS = {"type": "event", "name": "ratings-updated", "parameters": {"day": "date"}}


def test_an_event_fires_its_schedules_once_with_the_mapped_parameter(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    store = sched_store
    publish_event(
        store.meta,
        "ratings-updated",
        {"date": "old"},
        source="cli",
        user="ann",
        now=wall() - timedelta(minutes=1),
    )  # before the schedule: fires nothing
    add(store, "ranker", [RATINGS], wall(), parameters={"day": "2026-01-01", "k": 5})
    add(store, "other", [{"type": "event", "name": "something-else", "parameters": {}}], wall())
    sched, starter = scheduler(store, wall)
    metrics = HostMetrics()
    sched.observe = lambda result: count_tick(metrics, result)
    wall.advance(seconds=1)
    event, new = publish_event(
        store.meta,
        "ratings-updated",
        {"date": "2026-03-01", "rows": 12},
        source="cli",
        user="ann",
        now=wall(),
    )
    assert new
    first = sched.tick()
    assert len(first.started) == 1
    (fire,) = store.fires("ranker")
    assert fire.kind == FireKind.EVENT and fire.event_id == f"event:{event.id}"
    assert fire.params == {"day": "2026-03-01"} and fire.status == FireStatus.STARTED
    assert fire.trigger["event"] == "ratings-updated"
    assert fire.trigger["payload"] == {"date": "2026-03-01", "rows": 12}
    assert store.fires("other") == []
    # read again (every tick until it settles), and by a second scheduler: still one record
    for _ in range(3):
        wall.advance(seconds=20)
        sched.tick()
    late, _ = scheduler(store, wall)
    late.tick()
    assert [f.id for f in store.fires("ranker")] == [fire.id]
    # the payload lacks the mapped field: one recorded skip saying so, no run
    starter.finish_all()
    missing, _ = publish_event(
        store.meta, "ratings-updated", {"day": "x"}, source="api", user="ci", now=wall()
    )
    result = sched.tick()
    assert result.started == []
    skipped = store.fire_for_event("ranker", f"event:{missing.id}")
    assert skipped is not None and skipped.status == FireStatus.SKIPPED
    assert skipped.reason == "payload has no field 'date' for parameter 'day'"
    assert ("ranker", "skipped", "payload") in result.outcomes
    sample = metrics.registry.get_sample_value
    skips = {"schedule": "ranker", "reason": "payload"}
    assert sample("shipyard_schedule_fires_skipped_total", skips) == 1.0
    assert sample("shipyard_events_published_total", {"source": "cli"}) == 2.0  # one too old
    assert sample("shipyard_events_published_total", {"source": "api"}) == 1.0
    # overlap applies to event fires too; a paused schedule records the event as skipped
    add(store, "ranker", [RATINGS], wall(), overlap="skip")
    one, _ = publish_event(
        store.meta, "ratings-updated", {"date": "d1"}, source="cli", user="ann", now=wall()
    )
    two, _ = publish_event(
        store.meta, "ratings-updated", {"date": "d2"}, source="cli", user="ann", now=wall()
    )
    sched.tick()
    ran = store.fire_for_event("ranker", f"event:{one.id}")
    lost = store.fire_for_event("ranker", f"event:{two.id}")
    assert ran is not None and ran.status == FireStatus.STARTED and ran.version == 2
    assert lost is not None and lost.status == FireStatus.SKIPPED
    assert lost.reason is not None and lost.reason.startswith("overlap=skip: ")
    starter.finish_all()
    store.pause("ranker", "feed broken", user="ops", now=wall())
    three, _ = publish_event(
        store.meta, "ratings-updated", {"date": "d3"}, source="cli", user="ann", now=wall()
    )
    sched.tick()
    paused = store.fire_for_event("ranker", f"event:{three.id}")
    assert paused is not None and paused.status == FireStatus.SKIPPED
    assert paused.reason == "paused: feed broken"
    assert reason_kind(paused.reason) == "paused"


def finished_run(meta: MetaStore, flow: str, status: RunStatus) -> int:
    run_id = meta.create_run(flow, user="ann", params={}, tags=[], graph={}, code_key=None)
    meta.finish_run(run_id, status)
    return run_id


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_trigger_on_finish_success_failure_and_any(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    store, meta = sched_store, sched_store.meta
    finished_run(meta, "RatingsFlow", RunStatus.SUCCEEDED)  # before the schedules: nothing
    wall.at(datetime.now(UTC))  # runs end at the real time
    for on in ("success", "failure", "any"):
        add(
            store,
            f"on-{on}",
            [{"type": "flow", "flow": "RatingsFlow", "on": on}],
            wall(),
            flow="RankerFlow",
            overlap="allow",
        )
    sched, starter = scheduler(store, wall)
    ok = finished_run(meta, "RatingsFlow", RunStatus.SUCCEEDED)
    failed = finished_run(meta, "RatingsFlow", RunStatus.FAILED)
    killed = finished_run(meta, "RatingsFlow", RunStatus.KILLED)
    finished_run(meta, "UnrelatedFlow", RunStatus.SUCCEEDED)
    going = meta.create_run("RatingsFlow", user="ann", params={}, tags=[], graph={}, code_key=None)
    sched.tick()
    sched.tick()

    def upstream(name: str) -> list[str]:
        return sorted(f.trigger["upstream_run"] for f in store.fires(name))

    assert upstream("on-success") == [f"RatingsFlow/{ok}"]
    assert upstream("on-failure") == sorted([f"RatingsFlow/{failed}", f"RatingsFlow/{killed}"])
    assert upstream("on-any") == sorted(f"RatingsFlow/{r}" for r in (ok, failed, killed))
    (fire,) = store.fires("on-success")
    assert fire.kind == FireKind.FLOW and fire.event_id == f"run:{ok}"
    assert fire.trigger["upstream_status"] == "succeeded"
    assert len(starter.started) == 6  # every record ran: overlap=allow
    meta.finish_run(going, RunStatus.SUCCEEDED)  # ends later: fires then, once
    sched.tick()
    sched.tick()
    assert upstream("on-success") == sorted([f"RatingsFlow/{ok}", f"RatingsFlow/{going}"])
    # a downstream schedule's own runs are runs of its flow: they chain further
    add(
        store,
        "report",
        [{"type": "flow", "flow": "RankerFlow", "on": "success"}],
        wall(),
        flow="ReportFlow",
    )
    starter.finish(fire.id)
    sched.tick()
    (chained,) = store.fires("report")
    assert chained.trigger["upstream_run"] == f"RankerFlow/{starter.runs[fire.id]}"
    # a run whose process died without recording its end (its heartbeat stopped) is a
    # failure; if it comes back and succeeds, the success schedules fire then
    lost = meta.create_run("RatingsFlow", user="ann", params={}, tags=[], graph={}, code_key=None)
    sched.tick()
    assert f"RatingsFlow/{lost}" not in upstream("on-failure")  # alive so far
    # past its heartbeat (real time) by more than dead_after, however long the test took
    wall.at(datetime.now(UTC) + meta.dead_after + timedelta(seconds=1))
    sched.tick()
    (dead,) = [f for f in store.fires("on-failure") if f.event_id == f"run:{lost}"]
    assert dead.trigger["upstream_status"] == "dead"
    assert f"RatingsFlow/{lost}" in upstream("on-any")
    assert f"RatingsFlow/{lost}" not in upstream("on-success")
    meta.finish_run(lost, RunStatus.SUCCEEDED)
    sched.tick()
    assert f"RatingsFlow/{lost}" in upstream("on-success")
    assert upstream("on-any").count(f"RatingsFlow/{lost}") == 1  # one record per run


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_registry_and_cache_changes_are_events(
    sched_store: ScheduleStore, wall: WallClock, tmp_path: Path
) -> None:
    store, meta = sched_store, sched_store.meta
    add(
        store,
        "deploy-check",
        [{"type": "event", "name": "model.alias-moved", "parameters": {"version": "version"}}],
        wall(),
        parameters={"version": None},
    )
    sched, starter = scheduler(store, wall)
    blobs = open_blob_store(f"file://{tmp_path}/blobs")
    run_id = meta.create_run("TrainFlow", user="ann", params={}, tags=[], graph={}, code_key=None)
    task_id = meta.create_task(run_id, "train", foreach_stack=[], input_task_ids=[])
    meta.start_attempt(task_id, 0, pid=None)
    meta.finish_attempt(
        task_id,
        0,
        status=TaskStatus.SUCCEEDED,
        artifacts=[store_artifact(blobs, "model", {"w": 1})],
    )
    meta.finish_run(run_id, RunStatus.SUCCEEDED)
    registry = Registry(meta, blobs=blobs, home=tmp_path / "home")
    registry.register_artifact(f"TrainFlow/{run_id}/train:model", "ranker", user="ann")
    registry.set_alias("ranker", 1, "prod", user="ann")
    names = [(e.name, e.source, e.payload) for e in reversed(recent_events(meta))]
    assert names == [
        (
            "model.registered",
            "registry",
            {"model": "ranker", "version": 1, "flow": "TrainFlow", "run_id": run_id},
        ),
        (
            "model.alias-moved",
            "registry",
            {"model": "ranker", "alias": "prod", "version": 1, "previous": None},
        ),
    ]
    sched.tick()
    (fire,) = store.fires("deploy-check")
    assert fire.trigger["event"] == "model.alias-moved" and fire.params == {"version": 1}
    assert fire.status == FireStatus.STARTED
    # the cache's publish is an event too (the process-wide metadata store: SHIPYARD_HOME)
    context.reset()
    with cache.writer("home-rows", meta={"run": "TrainFlow/1"}, url="memory://events") as w:
        w.put_many({"p1": [1], "p2": [2], "p3": [3]})
    published = recent_events(context.default_stores().meta, name="cache.published")
    context.reset()
    assert [(e.source, e.payload) for e in published] == [
        (
            "cache",
            {
                "namespace": "home-rows",
                "version": w.version,
                "keys": 3,
                "meta": {"run": "TrainFlow/1", "bytes": 15},
            },
        )
    ]


LOOP_A = """
from shipyard import FlowSpec, step, trigger_on_finish


@trigger_on_finish(flow="BFlow")
class AFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_trigger_loop_is_refused_at_create(
    sched_store: ScheduleStore, wall: WallClock, tmp_path: Path
) -> None:
    blobs = open_blob_store(f"file://{tmp_path}/blobs")
    files = {}
    for name, text in {
        "a_flow.py": LOOP_A,
        "b_flow.py": LOOP_A.replace("BFlow", "CFlow").replace("AFlow", "BFlow"),
        "c_flow.py": LOOP_A.replace("BFlow", "AFlow").replace("class AFlow", "class CFlow"),
        "self_flow.py": LOOP_A.replace("BFlow", "SelfFlow").replace("AFlow", "SelfFlow"),
    }.items():
        files[name] = tmp_path / name
        files[name].write_text(text)

    def make(name: str) -> None:
        create(sched_store, files[name], name=None, user="ops", now=wall(), blobs=blobs)

    make("a_flow.py")
    make("b_flow.py")  # A runs after B, B after C: a chain, not a loop
    with pytest.raises(ScheduleDefinitionError) as refused:
        make("c_flow.py")
    assert refused.value.message.startswith(
        "schedule 'CFlow' would close a trigger loop: CFlow -> BFlow -> AFlow -> CFlow ("
        "schedule 'BFlow' runs BFlow when CFlow finishes; schedule 'AFlow' runs AFlow when "
        "BFlow finishes; schedule 'CFlow' runs CFlow when AFlow finishes)"
    )
    assert [s.name for s in sched_store.list()] == ["AFlow", "BFlow"]
    with pytest.raises(ScheduleDefinitionError, match="SelfFlow -> SelfFlow"):
        make("self_flow.py")


SELF_PUBLISH = """
import subprocess

from shipyard import FlowSpec, current, step, trigger


@trigger(event={WAITS!r})
class EchoFlow(FlowSpec):
    @step
    def start(self):
        {CALL}
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_flow_publishing_the_event_it_waits_for_is_refused_at_create(
    sched_store: ScheduleStore, wall: WallClock, tmp_path: Path
) -> None:
    """A -> A through an event: publishing it from a step (the CLI, or a publish call with
    the name as a literal), or registering a model / moving an alias / publishing a cache
    version while waiting for the registry's or the cache's event, is a loop; publishing
    another event is not."""
    blobs = open_blob_store(f"file://{tmp_path}/blobs")
    cases = {
        "cli": ("ratings-updated", 'subprocess.run("shipyard event publish ratings-updated")'),
        "call": ("ratings-updated", 'publish_event(meta, "ratings-updated", {})'),
        "model": ("model.registered", 'current.register_model("ranker", 1)'),
        "alias": ("model.alias-moved", 'Registry().set_alias("ranker", 3, "prod")'),
        "cache": ("cache.published", 'cache.writer("rows").close()'),
    }
    for i, (case, (waits, call)) in enumerate(cases.items()):
        flow = tmp_path / f"echo_{case}.py"
        flow.write_text(SELF_PUBLISH.replace("{WAITS!r}", repr(waits)).replace("{CALL}", call))
        with pytest.raises(ScheduleDefinitionError) as refused:
            create(sched_store, flow, name=f"echo-{i}", user="ops", now=wall(), blobs=blobs)
        assert f"echo_{case}.py:11: schedule 'echo-{i}' would close a trigger loop" in (
            refused.value.message
        ), case
        assert f"EchoFlow -> {waits} -> EchoFlow" in refused.value.message, case
    assert sched_store.list() == []
    other = tmp_path / "echo_other.py"
    other.write_text(
        SELF_PUBLISH.replace("{WAITS!r}", repr("ratings-updated")).replace(
            "{CALL}", 'subprocess.run("shipyard event publish ranks-ready")'
        )
    )
    create(sched_store, other, name="echo-ok", user="ops", now=wall(), blobs=blobs)
    assert [s.name for s in sched_store.list()] == ["echo-ok"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_event_read_in_a_transaction_that_failed_is_read_again(
    sched_store: ScheduleStore, wall: WallClock
) -> None:
    store = sched_store
    add(store, "ranker", [RATINGS], wall())
    event, _ = publish_event(
        store.meta, "ratings-updated", {"date": "d"}, source="cli", user="ann", now=wall()
    )
    feed = Feed(settle=timedelta(0))
    with pytest.raises(RuntimeError), store.writer.begin() as conn:
        assert len(feed.read(conn, store.list(), wall()).rows) == 1
        raise RuntimeError("the database went away before the commit")
    assert store.fires("ranker") == []
    with store.writer.begin() as conn:
        again = feed.read(conn, store.list(), wall())
    feed.done(again)
    assert again.inserted == 1 and again.events_passed == event.id
    with store.writer.begin() as conn:  # the cursor passed it: not read a third time
        assert feed.read(conn, store.list(), wall()).events == []
    (fire,) = store.fires("ranker")
    assert fire.event_id == f"event:{event.id}" and fire.params == {"day": "d"}
