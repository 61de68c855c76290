"""``@schedule``, ``@trigger`` and ``@trigger_on_finish``: Metaflow's argument forms, and a
clear error for each mistake."""

from __future__ import annotations

import pytest

from shipyard import FlowSpec, Parameter, current, schedule, step, trigger, trigger_on_finish
from shipyard.schedules.decorators import EventSpec, FinishSpec, triggers_of
from shipyard.schedules.errors import ScheduleDefinitionError
from shipyard.schedules.policies import Policies


def flow_class() -> type[FlowSpec]:
    class Ranker(FlowSpec):
        day = Parameter("day", default="today")
        user = Parameter("user", default="x")

        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    return Ranker


def test_the_issue_example_and_metaflow_forms() -> None:
    cls = schedule(cron="0 */4 * * *", timezone="Europe/Amsterdam")(
        trigger_on_finish(flow="RatingsFlow")(
            trigger(event={"name": "ratings-updated", "parameters": {"day": "date"}})(flow_class())
        )
    )
    found = triggers_of(cls)
    assert found.time is not None
    assert (found.time.cron, found.time.timezone) == ("0 */4 * * *", "Europe/Amsterdam")
    assert found.time.policies == Policies()  # the documented defaults
    assert found.events == (EventSpec("ratings-updated", {"day": "date"}),)
    assert found.finishes == (FinishSpec("RatingsFlow", "success"),)
    assert found.triggers_json() == [
        {"type": "event", "name": "ratings-updated", "parameters": {"day": "date"}},
        {"type": "flow", "flow": "RatingsFlow", "on": "success"},
    ]
    # Metaflow's other forms: a bare name, events=[...], parameters as a list, flows=[...]
    cls = trigger(events=["a", {"name": "b", "parameters": ["day", ("user", "who")]}], options={})(
        flow_class()
    )
    assert triggers_of(cls).events == (
        EventSpec("a"),
        EventSpec("b", {"day": "day", "user": "who"}),
    )
    cls = trigger_on_finish(flows=["A", {"name": "B"}], on="any")(flow_class())
    assert triggers_of(cls).finishes == (FinishSpec("A", "any"), FinishSpec("B", "any"))


@pytest.mark.parametrize(
    ("kwargs", "cron"),
    [({}, "0 0 * * *"), ({"hourly": True}, "0 * * * *"), ({"weekly": True}, "0 0 * * 0")],
)
def test_interval_forms(kwargs: dict[str, bool], cron: str) -> None:
    spec = triggers_of(schedule(**kwargs)(flow_class())).time  # type: ignore[arg-type]
    assert spec is not None and spec.cron == cron and spec.timezone == "UTC"


def test_policies_on_the_decorator() -> None:
    cls = schedule(
        hourly=True,
        catchup="all",
        catchup_window="6h",
        catchup_max=5,
        overlap="queue",
        jitter="2m",
        pause_on_failure=3,
        executor="ray",
    )(flow_class())
    spec = triggers_of(cls).time
    assert spec is not None
    assert spec.policies == Policies("all", 21600, 5, "queue", 120, 3, "ray")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: schedule(cron="0 25 * * *"), "field 'hour' at column 3: 25 is out of range"),
        (lambda: schedule(cron="* * *"), "3 fields, expected 5"),
        (lambda: schedule(timezone="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (lambda: schedule(hourly=True, weekly=True), "give one of hourly, daily, weekly"),
        (lambda: schedule(cron="0 * * * *", daily=True), "not both"),
        (lambda: schedule(overlap="sometimes"), "overlap='sometimes': choose one of"),
        (lambda: schedule(catchup="some"), "catchup='some': choose one of"),
        (lambda: schedule(jitter="soon"), "jitter='soon'"),
        (lambda: schedule(pause_on_failure=-1), "pause_on_failure=-1"),
        (lambda: trigger(), "@trigger needs event= or events="),
        (lambda: trigger(event={"parameters": {}}), "needs a 'name'"),
        (lambda: trigger(event={"name": "x", "params": {}}), "unknown key(s) ['params']"),
        (lambda: trigger(event=3), "give a name"),
        (lambda: trigger_on_finish(), "needs flow= or flows="),
        (lambda: trigger_on_finish(flow="A", on="done"), "on='done': choose one of"),
        (lambda: trigger_on_finish(flow="not a class"), "give the upstream flow's class name"),
    ],
)
def test_mistakes_are_named(make: object, message: str) -> None:
    with pytest.raises(ScheduleDefinitionError) as info:
        make()  # type: ignore[operator]
    assert message in str(info.value)


def test_mapping_to_a_parameter_the_flow_lacks_is_refused() -> None:
    with pytest.raises(ScheduleDefinitionError, match="to 'dya', which is not a Parameter"):
        trigger(event={"name": "e", "parameters": {"dya": "date"}})(flow_class())


def test_decorates_flow_classes_only_and_once() -> None:
    with pytest.raises(ScheduleDefinitionError, match="decorates a FlowSpec class"):
        schedule(hourly=True)(object)
    once = schedule(hourly=True)(flow_class())
    with pytest.raises(ScheduleDefinitionError, match="two @schedule decorators"):
        schedule(daily=True)(once)


def test_current_trigger_outside_a_step() -> None:
    with pytest.raises(AttributeError, match="only available while a flow step runs"):
        current.trigger  # noqa: B018
