"""Typed views of the schedule tables' rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shipyard.schedules.policies import Policies


class FireStatus(StrEnum):
    """Where a fire record is: ``pending`` (to start), ``queued`` (waits for an earlier run
    or the global cap), ``claimed`` (a scheduler is starting it), ``started`` (its run's
    process took it; ``run_id`` once the run exists), ``skipped`` and ``error`` (final, with
    a reason)."""

    PENDING = "pending"
    QUEUED = "queued"
    CLAIMED = "claimed"
    STARTED = "started"
    SKIPPED = "skipped"
    ERROR = "error"


class FireKind(StrEnum):
    """Why a fire record exists; the run's ``current.trigger.type``."""

    SCHEDULE = "schedule"
    BACKFILL = "backfill"
    EVENT = "event"
    FLOW = "flow"
    MANUAL = "manual"


@dataclass(frozen=True)
class VersionRecord:
    """One version of a schedule: what runs, and when."""

    name: str
    version: int
    flow_name: str
    code_key: str
    module: str
    flow_file: str
    parameters: dict[str, Any]
    cron: str | None
    timezone: str
    triggers: list[dict[str, Any]]
    policies: Policies
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule with its current version."""

    name: str
    flow_name: str
    version: int
    paused: bool
    note: str | None
    paused_at: datetime | None
    paused_by: str | None
    cursor: datetime
    deleted_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    current: VersionRecord


@dataclass(frozen=True)
class FireRecord:
    """One fire time, event or manual trigger of a schedule, and what became of it."""

    id: int
    schedule: str
    version: int
    kind: FireKind
    scheduled_for: datetime | None
    event_id: str | None
    due_at: datetime
    status: FireStatus
    reason: str | None
    params: dict[str, Any]
    trigger: dict[str, Any]
    claim_token: str | None
    claimed_by: str | None
    claim_expires: datetime | None
    run_id: int | None
    pid: int | None
    host: str | None
    exit_code: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: when a scheduler asked for this run to stop (``overlap="cancel-previous"``)
    cancel_requested_at: datetime | None = None


__all__ = ["FireKind", "FireRecord", "FireStatus", "ScheduleRecord", "VersionRecord"]
