"""What started a run, as the run pages say it: from ``runs.trigger`` (what the scheduler
passed the run, the same data as ``current.trigger``), or "by hand" when it has none.

The trigger is data from the database, partly from outside (an event's payload comes from
whoever published it): every field is checked for its type here, the payload is shown as
JSON cut to :data:`PAYLOAD_CHARS` characters, and the templates escape everything.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipyard.ui.formats import shorten, utc

#: the longest event payload a run page shows (the rest is cut, with an ellipsis)
PAYLOAD_CHARS = 600
_UPSTREAM = re.compile(r"([^/\s]{1,255})/([0-9]{1,19})")
_TYPES = ("schedule", "backfill", "event", "flow", "manual")


@dataclass(frozen=True)
class TriggerView:
    """One run's trigger, each field checked: ``type`` is one of schedule, backfill,
    event, flow, manual, or ``hand`` (no trigger recorded)."""

    type: str
    schedule: str | None = None
    scheduled_for: datetime | None = None
    event: str | None = None
    payload: str | None = None  # JSON, cut to PAYLOAD_CHARS
    upstream_flow: str | None = None  # for a link to the upstream run
    upstream_run: str | None = None  # its id (or the text as given, if not Flow/id)
    by: str | None = None  # who triggered it by hand (manual)

    @classmethod
    def of(cls, trigger: dict[str, Any] | None) -> TriggerView:
        if not isinstance(trigger, dict) or not trigger:
            return cls("hand")
        kind = trigger.get("type")
        upstream_flow, upstream_run = _upstream(trigger.get("upstream_run"))
        return cls(
            type=kind if kind in _TYPES else "unknown",
            schedule=_text(trigger.get("schedule")),
            scheduled_for=_time(trigger.get("scheduled_for")),
            event=_text(trigger.get("event")),
            payload=_payload(trigger.get("payload")),
            upstream_flow=upstream_flow,
            upstream_run=upstream_run,
            by=_text(trigger.get("by")),
        )

    @property
    def label(self) -> str:
        """A word for the runs list's badge."""
        return {"hand": "by hand", "unknown": "other"}.get(self.type, self.type)


def _text(value: Any) -> str | None:
    return shorten(value, 255) if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _payload(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return shorten(text, PAYLOAD_CHARS)


def _upstream(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or not value:
        return None, None
    match = _UPSTREAM.fullmatch(value)
    if match is None:
        return None, shorten(value, 255)
    return match.group(1), match.group(2)


__all__ = ["PAYLOAD_CHARS", "TriggerView"]
