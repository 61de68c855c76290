"""``@schedule``, ``@trigger`` and ``@trigger_on_finish``: when a flow runs by itself.

>>> @schedule(cron="0 */4 * * *", timezone="Europe/Amsterdam")      # doctest: +SKIP
... @trigger_on_finish(flow="RatingsFlow")
... @trigger(event={"name": "ratings-updated", "parameters": {"day": "date"}})
... class RankerFlow(FlowSpec): ...

They only describe: nothing runs until ``shipyard schedule create flow.py`` registers the
flow (with a snapshot of its code) as a schedule. The arguments follow Metaflow's:
``@schedule(hourly=True)`` / ``daily=True`` / ``weekly=True`` / ``cron=...`` (no argument:
daily, as in Metaflow), ``@trigger(event="name")`` or ``event={"name": ..., "parameters":
{flow_parameter: payload_field}}`` or ``events=[...]``, and ``@trigger_on_finish(flow=...)``
or ``flows=[...]``. The policies of :mod:`shipyard.schedules.policies` are extra arguments of
``@schedule``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shipyard.schedules.cron import Cron, interval_expr, zone
from shipyard.schedules.errors import CronError, ScheduleDefinitionError
from shipyard.schedules.policies import Policies

T = TypeVar("T", bound=type)
ON = ("success", "failure", "any")


@dataclass(frozen=True)
class TimeSpec:
    """What ``@schedule`` said: a cron expression in a time zone, and the policies."""

    cron: str
    timezone: str = "UTC"
    policies: Policies = field(default_factory=Policies)


@dataclass(frozen=True)
class EventSpec:
    """One ``@trigger`` event: its name and flow parameter -> payload field."""

    name: str
    parameters: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"type": "event", "name": self.name, "parameters": dict(self.parameters)}


@dataclass(frozen=True)
class FinishSpec:
    """One ``@trigger_on_finish`` upstream: a flow and which endings start this one."""

    flow: str
    on: str = "success"

    def to_json(self) -> dict[str, Any]:
        return {"type": "flow", "flow": self.flow, "on": self.on}


def _check_flow_class(decorator: str, cls: Any) -> None:
    from shipyard.flow.spec import FlowSpec

    if not (isinstance(cls, type) and issubclass(cls, FlowSpec)):
        raise ScheduleDefinitionError(
            f"@{decorator} decorates a FlowSpec class, not {cls!r}: put it on the line "
            "above class MyFlow(FlowSpec):"
        )


def schedule(
    *,
    cron: str | None = None,
    timezone: str | None = None,
    hourly: bool = False,
    daily: bool = False,
    weekly: bool = False,
    catchup: str | None = None,
    catchup_window: int | str | None = None,
    catchup_max: int | None = None,
    overlap: str | None = None,
    jitter: int | str | None = None,
    pause_on_failure: int | None = None,
    executor: str | None = None,
) -> _Apply:
    """Run the flow on a timetable once ``shipyard schedule create`` registers it."""
    try:
        interval = interval_expr(hourly=hourly, daily=daily, weekly=weekly)
    except CronError as exc:
        raise ScheduleDefinitionError(f"@schedule: {exc.message}") from None
    if cron is not None and interval is not None:
        raise ScheduleDefinitionError(
            "@schedule: give cron= or one of hourly/daily/weekly, not both"
        )
    expr = cron if cron is not None else interval or "0 0 * * *"
    tz = timezone or "UTC"
    try:
        Cron.parse(expr)
        zone(tz)
    except CronError as exc:
        raise ScheduleDefinitionError(f"@schedule: {exc.message}") from None
    policies = Policies().merged(
        catchup=catchup,
        catchup_window=catchup_window,
        catchup_max=catchup_max,
        overlap=overlap,
        jitter=jitter,
        pause_on_failure=pause_on_failure,
        executor=executor,
    )
    return _Apply("schedule", TimeSpec(expr, tz, policies))


def _event(value: Any) -> EventSpec:
    if isinstance(value, str) and value:
        return EventSpec(value)
    if isinstance(value, Mapping):
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise ScheduleDefinitionError(
                f"@trigger event {dict(value)!r} needs a 'name', e.g. "
                "{'name': 'ratings-updated', 'parameters': {'day': 'date'}}"
            )
        unknown = set(value) - {"name", "parameters"}
        if unknown:
            raise ScheduleDefinitionError(
                f"@trigger event {name!r}: unknown key(s) {sorted(unknown)}; "
                "an event has 'name' and 'parameters'"
            )
        raw = value.get("parameters") or {}
        mapping: dict[str, str] = {}
        if isinstance(raw, Mapping):
            items = list(raw.items())
        elif isinstance(raw, list | tuple):  # Metaflow: ["day"] or [("day", "date")]
            items = [(p, p) if isinstance(p, str) else tuple(p) for p in raw]
        else:
            raise ScheduleDefinitionError(
                f"@trigger event {name!r}: parameters is a dict {{flow_parameter: "
                f"payload_field}}, not {raw!r}"
            )
        for item in items:
            if len(item) != 2 or not all(isinstance(x, str) and x for x in item):
                raise ScheduleDefinitionError(
                    f"@trigger event {name!r}: parameter mapping {item!r} is not "
                    "(flow_parameter, payload_field)"
                )
            mapping[item[0]] = item[1]
        return EventSpec(name, mapping)
    raise ScheduleDefinitionError(
        f"@trigger event {value!r}: give a name ('ratings-updated') or a dict "
        "{'name': ..., 'parameters': {...}}"
    )


def trigger(
    *, event: Any = None, events: list[Any] | None = None, options: dict[str, Any] | None = None
) -> _Apply:
    """Run the flow when an event of this name is published (``shipyard event publish``).
    ``options`` (Metaflow's backend tuning) is accepted so a ported flow loads, and unused."""
    _check_options("@trigger", options)
    given = ([event] if event is not None else []) + list(events or [])
    if not given:
        raise ScheduleDefinitionError("@trigger needs event= or events=")
    return _Apply("trigger", tuple(_event(e) for e in given))


def trigger_on_finish(
    *,
    flow: str | dict[str, str] | None = None,
    flows: list[str | dict[str, str]] | None = None,
    on: str = "success",
    options: dict[str, Any] | None = None,
) -> _Apply:
    """Run the flow when another flow's run finishes (``on``: success, failure or any).
    ``flow`` is a class name (Metaflow's ``{"name": ...}`` form is read too)."""
    _check_options("@trigger_on_finish", options)
    given = ([flow] if flow is not None else []) + list(flows or [])
    names = [f.get("name") if isinstance(f, Mapping) else f for f in given]
    if not names:
        raise ScheduleDefinitionError("@trigger_on_finish needs flow= or flows=")
    if on not in ON:
        raise ScheduleDefinitionError(
            f"@trigger_on_finish on={on!r}: choose one of {', '.join(repr(o) for o in ON)}"
        )
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ScheduleDefinitionError(
                f"@trigger_on_finish flow={name!r}: give the upstream flow's class name"
            )
    return _Apply("trigger_on_finish", tuple(FinishSpec(str(n), on) for n in names))


def _check_options(decorator: str, options: Any) -> None:
    if options is not None and not isinstance(options, Mapping):
        raise ScheduleDefinitionError(f"{decorator} options={options!r}: give a dict")


class _Apply:
    def __init__(self, kind: str, spec: Any) -> None:
        self.kind, self.spec = kind, spec

    def __call__(self, cls: T) -> T:
        _check_flow_class(self.kind, cls)
        attr = f"_shipyard_{self.kind}"
        if self.kind == "schedule":
            if "_shipyard_schedule" in vars(cls):
                raise ScheduleDefinitionError(f"{cls.__name__} has two @schedule decorators")
            setattr(cls, attr, self.spec)
        else:
            setattr(cls, attr, (*vars(cls).get(attr, ()), *self.spec))
        if self.kind == "trigger":
            _check_mappings(cls, self.spec)
        return cls


def _check_mappings(cls: type, specs: tuple[EventSpec, ...]) -> None:
    from shipyard.flow.parameters import flow_parameters

    names = {p.name for p in flow_parameters(cls)}
    for spec in specs:
        for param in spec.parameters:
            if param not in names:
                raise ScheduleDefinitionError(
                    f"@trigger event {spec.name!r} maps payload field "
                    f"{spec.parameters[param]!r} to {param!r}, which is not a Parameter of "
                    f"{cls.__name__} (it has: {', '.join(sorted(names)) or 'none'})"
                )


@dataclass(frozen=True)
class FlowTriggers:
    """Everything a flow class says about when it runs."""

    time: TimeSpec | None
    events: tuple[EventSpec, ...]
    finishes: tuple[FinishSpec, ...]

    def triggers_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.events] + [f.to_json() for f in self.finishes]


def triggers_of(flow_cls: type) -> FlowTriggers:
    """The flow's ``@schedule``, ``@trigger`` and ``@trigger_on_finish``."""
    time = vars(flow_cls).get("_shipyard_schedule")
    return FlowTriggers(
        time=time if isinstance(time, TimeSpec) else None,
        events=tuple(vars(flow_cls).get("_shipyard_trigger", ())),
        finishes=tuple(vars(flow_cls).get("_shipyard_trigger_on_finish", ())),
    )


__all__ = [
    "EventSpec",
    "FinishSpec",
    "FlowTriggers",
    "TimeSpec",
    "schedule",
    "trigger",
    "trigger_on_finish",
    "triggers_of",
]
