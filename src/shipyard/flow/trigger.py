"""``current.trigger``: why the running flow runs (a schedule, an event, an upstream flow).

The scheduler starts a run with ``--shipyard-trigger JSON`` (a hidden run option); the run's
process activates it before its tasks are forked, and records it on the run
(``runs.trigger``), so the client and the UI say the same. A run started by hand has none
(``current.trigger`` is None, as in Metaflow).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shipyard.flow.exceptions import ParameterError

TYPES = ("schedule", "backfill", "event", "flow", "manual")


class Trigger:
    """What started the run: ``type`` (schedule, backfill, event, flow, manual),
    ``scheduled_for`` (the fire time, for schedule and backfill), ``event`` (its name),
    ``payload``, ``upstream_run`` (``Flow/12``, for flow triggers) and ``schedule``."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    @property
    def type(self) -> str:
        return str(self.data["type"])

    @property
    def schedule(self) -> str | None:
        return self.data.get("schedule")

    @property
    def scheduled_for(self) -> datetime | None:
        value = self.data.get("scheduled_for")
        return datetime.fromisoformat(value) if value else None

    @property
    def event(self) -> str | None:
        return self.data.get("event")

    @property
    def payload(self) -> dict[str, Any]:
        return dict(self.data.get("payload") or {})

    @property
    def upstream_run(self) -> str | None:
        return self.data.get("upstream_run")

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)

    def __repr__(self) -> str:
        return f"Trigger({self.data!r})"


def parse(text: str) -> Trigger:
    """A trigger from the JSON the scheduler passes; a bad one names what is wrong."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParameterError(f"--shipyard-trigger is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("type") not in TYPES:
        raise ParameterError(
            f"--shipyard-trigger {text!r}: a JSON object with a 'type' of {', '.join(TYPES)}"
        )
    return Trigger(data)


_active: Trigger | None = None


def activate(trigger: Trigger | None) -> None:
    """Make ``current.trigger`` describe this run (the run's process, before forks)."""
    global _active
    _active = trigger


def active() -> Trigger | None:
    """The running flow's trigger, or None (started by hand)."""
    return _active


__all__ = ["TYPES", "Trigger", "activate", "active", "parse"]
