"""``shipyard loadtest``: a load client of our own, correct about coordinated omission.

- :mod:`~shipyard.loadtest.connection`: keep-alive HTTP/1.1 connections on raw asyncio
  protocols, answers parsed by httptools;
- :mod:`~shipyard.loadtest.models`: the open model (a fixed schedule, latency corrected)
  and the closed one (N connections);
- :mod:`~shipyard.loadtest.histogram`: HdrHistogram-style latency histograms;
- :mod:`~shipyard.loadtest.processes`: one process or several, merged;
- :mod:`~shipyard.loadtest.report`, :mod:`~shipyard.loadtest.slo`: what a run tells.

>>> plan = Plan(address, tuple(request_cycle(address, [body])), duration=10,
...             max_requests=100_000, rate=500)                      # doctest: +SKIP
>>> outcome = run(plan)                                               # doctest: +SKIP
>>> summary(outcome, target="ranker/home")["latency_ms"]["p99"]       # doctest: +SKIP
"""

from __future__ import annotations

from shipyard.loadtest.errors import BodyError, LoadtestError, SLOError, TargetError
from shipyard.loadtest.histogram import Histogram
from shipyard.loadtest.models import Plan, run_plan
from shipyard.loadtest.processes import Outcome, run
from shipyard.loadtest.progress import Progress
from shipyard.loadtest.report import judge, summary, table, write_outputs
from shipyard.loadtest.requests import (
    Address,
    Body,
    bodies_from_jsonl,
    body_from_file,
    body_from_json,
    parse_header,
    parse_target,
    request_cycle,
)
from shipyard.loadtest.results import Interval, ProcessResult
from shipyard.loadtest.slo import Check, Objective, check, parse_slo

__all__ = [
    "Address",
    "Body",
    "BodyError",
    "Check",
    "Histogram",
    "Interval",
    "LoadtestError",
    "Objective",
    "Outcome",
    "Plan",
    "ProcessResult",
    "Progress",
    "SLOError",
    "TargetError",
    "bodies_from_jsonl",
    "body_from_file",
    "body_from_json",
    "check",
    "judge",
    "parse_header",
    "parse_slo",
    "parse_target",
    "request_cycle",
    "run",
    "run_plan",
    "summary",
    "table",
    "write_outputs",
]
