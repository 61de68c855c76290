"""Schedules: flows that run themselves, on a timetable, on events, or after other flows.

A *schedule* is a named, versioned record of a flow (a snapshot of its code, its
parameters' defaults, its triggers and policies) in the metadata database; the scheduler
(inside ``shipyard serve``, or alone as ``shipyard scheduler``) turns each fire time into
exactly one record: a run, or a skip with its reason.

Modules: ``cron`` (the time engine), ``decorators`` (``@schedule``, ``@trigger``,
``@trigger_on_finish``), ``policies``, ``plan`` (which fire times are due), ``store`` (the
tables), ``feed`` (events and finished runs into fire records), ``scheduler`` (the tick
loop), ``launch`` (a run's fresh process), ``manage`` (what the commands do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_exports

_EXPORTS = {
    "AdminKeyRequired": "shipyard.schedules.errors",
    "Cron": "shipyard.schedules.cron",
    "CronError": "shipyard.schedules.errors",
    "Policies": "shipyard.schedules.policies",
    "ScheduleDefinitionError": "shipyard.schedules.errors",
    "ScheduleError": "shipyard.schedules.errors",
    "ScheduleNotFound": "shipyard.schedules.errors",
    "ScheduleStore": "shipyard.schedules.store",
    "Scheduler": "shipyard.schedules.scheduler",
    "schedule": "shipyard.schedules.decorators",
    "trigger": "shipyard.schedules.decorators",
    "trigger_on_finish": "shipyard.schedules.decorators",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from shipyard.schedules.cron import Cron as Cron
    from shipyard.schedules.decorators import schedule as schedule
    from shipyard.schedules.decorators import trigger as trigger
    from shipyard.schedules.decorators import trigger_on_finish as trigger_on_finish
    from shipyard.schedules.errors import AdminKeyRequired as AdminKeyRequired
    from shipyard.schedules.errors import CronError as CronError
    from shipyard.schedules.errors import ScheduleDefinitionError as ScheduleDefinitionError
    from shipyard.schedules.errors import ScheduleError as ScheduleError
    from shipyard.schedules.errors import ScheduleNotFound as ScheduleNotFound
    from shipyard.schedules.policies import Policies as Policies
    from shipyard.schedules.scheduler import Scheduler as Scheduler
    from shipyard.schedules.store import ScheduleStore as ScheduleStore

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
