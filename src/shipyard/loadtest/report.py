"""What a load test tells: the summary (a dict, written as ``summary.json``), the table at
the end of the run, the per-second CSV and a self-contained HTML report.

``summary.json`` keys: ``requests`` (finished: answered or failed), ``errors``, ``rps``
(answers per second achieved), ``latency_ms`` ``{p50, p90, p99, p999, max, mean}`` and, in the
open model, ``latency_uncorrected_ms`` (the same keys) and ``send_lag_ms``; also the model,
target and settings, ``errors_by_status``, ``errors_by_exception``, the client's CPU and
whether the client was the limit (``client.limited`` with its ``warnings``), and the
``slo`` checks when ``--slo`` was given.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from shipyard.loadtest.charts import Series, line_chart, percentile_ticks, percentile_x
from shipyard.loadtest.histogram import Histogram
from shipyard.loadtest.processes import Outcome
from shipyard.loadtest.slo import Check, Objective, check

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
#: a process busier than this share of a core was the limit, not the server
CPU_LIMIT = 0.9
#: an open-model send lag p99 above this (ms) means the client could not keep its schedule
LAG_LIMIT_MS = 1.0
#: a late client this busy is told to add processes; a less busy one, that the machine is
BUSY_SHARE = 0.5


def latency_ms(histogram: Histogram) -> dict[str, float]:
    """``{p50, p90, p99, p999, max, mean}`` of ``histogram`` in milliseconds."""
    values = histogram.percentiles(PERCENTILES.values())
    block = {k: round(v / 1000, 3) for k, v in zip(PERCENTILES, values, strict=True)}
    block["max"] = round(histogram.max / 1000, 3)
    block["mean"] = round(histogram.mean / 1000, 3)
    return block


def client_warnings(outcome: Outcome) -> list[str]:
    """Why the client, not the server, may have been the limit (empty: it was not)."""
    warnings = []
    busy = [r.cpu_share for r in outcome.results if r.cpu_share >= CPU_LIMIT]
    if busy:
        warnings.append(
            f"the client used {max(busy):.0%} of a core in {len(busy)} of "
            f"{outcome.processes} process(es): the client was the limit, not the server "
            "(add --processes, or lower the load)"
        )
    if outcome.plan.open:
        lag = outcome.total.lag.percentile(99) / 1000
        if lag > LAG_LIMIT_MS:
            busiest = max((r.cpu_share for r in outcome.results), default=0.0)
            why = (
                "add --processes, or lower the rate"
                if busiest >= BUSY_SHARE
                else f"its CPU was only {busiest:.0%} of a core: the machine is busy, or its "
                "timers coarse; latencies of a few ms include that lateness"
            )
            warnings.append(
                f"send lag p99 {lag:.2f} ms > {LAG_LIMIT_MS:g} ms: the client sent late, so "
                f"the rate and the latencies are partly the client's ({why})"
            )
    return warnings


def client_bound(outcome: Outcome) -> bool:
    """Whether the client's own CPU was the limit: a process at :data:`CPU_LIMIT` of a core,
    or (open model) sending late while at least :data:`BUSY_SHARE` busy. A late client that
    was mostly idle waited for a busy machine's CPU: that lateness is in the corrected
    latencies, so a rate it met was met, and a higher one is still worth trying."""
    busiest = max((r.cpu_share for r in outcome.results), default=0.0)
    if busiest >= CPU_LIMIT:
        return True
    late = outcome.plan.open and outcome.total.lag.percentile(99) / 1000 > LAG_LIMIT_MS
    return late and busiest >= BUSY_SHARE


def judge(outcome: Outcome, objectives: list[Objective]) -> list[Check]:
    """Each objective against the run (latency clauses: the corrected latency in the open
    model; errors: failed requests over finished ones, all of them when none finished)."""
    total = outcome.total
    return check(
        objectives,
        latency_ms=lambda p: total.latency.percentile(p) / 1000,
        max_ms=total.latency.max / 1000,
        mean_ms=total.latency.mean / 1000,
        error_rate=total.errors / total.requests if total.requests else 1.0,
        rps=outcome.rps,
    )


def summary(outcome: Outcome, *, target: str, checks: list[Check] | None = None) -> dict[str, Any]:
    """The run as a JSON-ready dict (see the module docstring for the keys)."""
    plan, total = outcome.plan, outcome.total
    requests = total.requests
    warnings = client_warnings(outcome)
    result: dict[str, Any] = {
        "target": target,
        "model": "open" if plan.open else "closed",
        "target_rps": plan.rate,
        "concurrency": plan.concurrency,
        "duration_s": plan.duration,
        "ramp_s": plan.ramp,
        "processes": outcome.processes,
        "measured_s": round(outcome.measured_seconds, 3),
        "stopped_by": outcome.stopped_by,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "requests": requests,
        "responses": total.responses,
        "errors": total.errors,
        "error_rate": round(total.errors / requests, 6) if requests else 0.0,
        "rps": round(outcome.rps, 2),
        "latency_ms": latency_ms(total.latency),
    }
    if plan.open:
        result["latency_uncorrected_ms"] = latency_ms(total.uncorrected)
        lag = total.lag
        result["send_lag_ms"] = {
            "p50": round(lag.percentile(50) / 1000, 3),
            "p99": round(lag.percentile(99) / 1000, 3),
            "max": round(lag.max / 1000, 3),
        }
        result["max_queued"] = max((r.max_queued for r in outcome.results), default=0)
    result["errors_by_status"] = {str(k): v for k, v in sorted(total.statuses.items())}
    result["errors_by_exception"] = dict(sorted(total.exceptions.items()))
    result["client"] = {
        "cpu": [round(r.cpu_share, 3) for r in outcome.results],
        "cpu_seconds": round(sum(r.cpu_seconds for r in outcome.results), 3),
        "connections_opened": sum(r.connections_opened for r in outcome.results),
        "limited": bool(warnings),
        "warnings": warnings,
    }
    if checks is not None:
        result["slo"] = {
            "met": all(c.met for c in checks),
            "checks": [
                {
                    "objective": c.objective.text,
                    "actual": round(c.actual, 6),
                    "met": c.met,
                }
                for c in checks
            ],
        }
    return result


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def table(s: dict[str, Any]) -> str:
    """The end-of-run table, as text."""
    lines = []
    if s["model"] == "open":
        model = f"open model, {s['target_rps']:g} req/s"
    else:
        model = f"closed model, {s['concurrency']} connections"
    ramp = f" after a {s['ramp_s']:g}s ramp" if s["ramp_s"] else ""
    lines.append(
        f"{s['target']}: {model} for {s['duration_s']:g}s{ramp}, {s['processes']} process(es)"
    )
    if s["stopped_by"] == "max-requests":
        lines.append("  (stopped early: --max-requests reached)")
    elif s["stopped_by"] == "interrupted":
        lines.append("  (stopped early: interrupted)")
    rate = f"{s['rps']:,.1f} req/s"
    if s["target_rps"]:
        rate += f" achieved of {s['target_rps']:,g} target ({s['rps'] / s['target_rps']:.0%})"
    lines.append(
        f"  requests     {s['requests']:,} in {s['measured_s']:g}s, "
        f"{s['errors']:,} errors ({s['error_rate']:.2%})"
    )
    lines.append(f"  rate         {rate}")
    keys = ("p50", "p90", "p99", "p999", "max")
    header = "".join(f"{k if k != 'p999' else 'p99.9':>10}" for k in keys)
    lines.append(f"  latency      {'':<12}{header}")
    rows = [("corrected" if s["model"] == "open" else "", s["latency_ms"])]
    if s["model"] == "open":
        rows.append(("uncorrected", s["latency_uncorrected_ms"]))
    for label, block in rows:
        lines.append(f"               {label:<12}" + "".join(f"{_ms(block[k]):>10}" for k in keys))
    if s["model"] == "open":
        lag = s["send_lag_ms"]
        lines.append(
            f"  send lag     p50 {_ms(lag['p50'])}, p99 {_ms(lag['p99'])}, "
            f"max {_ms(lag['max'])}; at most {s['max_queued']:,} waited for a connection"
        )
    by_status = ", ".join(f"{k}: {v:,}" for k, v in s["errors_by_status"].items()) or "none"
    by_exception = ", ".join(f"{k}: {v:,}" for k, v in s["errors_by_exception"].items()) or "none"
    lines.append(f"  errors       by status: {by_status}; by exception: {by_exception}")
    cpu = ", ".join(f"{c:.0%}" for c in s["client"]["cpu"])
    lines.append(
        f"  client CPU   {cpu} of a core per process; "
        f"{s['client']['connections_opened']:,} connections opened"
    )
    for warning in s["client"]["warnings"]:
        lines.append(f"WARNING: {warning}")
    return "\n".join(lines)


CSV_COLUMNS = [
    "second",
    "requests",
    "rps",
    "p50_ms",
    "p99_ms",
    "errors",
    "p50_uncorrected_ms",
    "p99_uncorrected_ms",
]


def write_csv(outcome: Outcome, path: Path) -> None:
    """One row per measured second: rps, p50, p99, errors (and the uncorrected
    percentiles in the open model)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS if outcome.plan.open else CSV_COLUMNS[:6])
        for i in outcome.measured:
            p50, p99 = i.latency.percentiles((50, 99))
            row: list[object] = [
                i.second,
                i.requests,
                round(i.responses / i.span, 2),
                p50 / 1000,
                p99 / 1000,
                i.errors,
            ]
            if outcome.plan.open:
                u50, u99 = i.uncorrected.percentiles((50, 99))
                row += [u50 / 1000, u99 / 1000]
            writer.writerow(row)


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 900px; color: #222; }
h1 { font-size: 1.3em; }
pre { font-size: 12px; background: #f6f6f6; padding: 1em; white-space: pre-wrap; }
.warning { background: #fff3cd; padding: .6em 1em; border-left: 4px solid #e0a800; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
svg .title { font-weight: 600; font-size: 12px; } svg .ylab { text-anchor: end; }
svg .xlab { text-anchor: middle; } svg .frame { fill: none; stroke: #ccc; }
svg .grid { stroke: #eee; }
"""


def html(outcome: Outcome, s: dict[str, Any]) -> str:
    """The self-contained HTML report: the table, latency and rate over time, and the
    percentile distribution on an HdrHistogram-style axis."""
    measured = outcome.measured
    p99 = [
        (i.second, i.latency.percentile(99) / 1000 if i.latency.count else None) for i in measured
    ]
    p50 = [
        (i.second, i.latency.percentile(50) / 1000 if i.latency.count else None) for i in measured
    ]
    open_model = outcome.plan.open
    over_time = [
        Series("p50" + (" corrected" if open_model else ""), "#2c7fb8", p50),
        Series("p99" + (" corrected" if open_model else ""), "#c0392b", p99),
    ]
    if open_model:
        u99 = [
            (i.second, i.uncorrected.percentile(99) / 1000 if i.uncorrected.count else None)
            for i in measured
        ]
        over_time.append(Series("p99 uncorrected", "#c0392b", u99, dashed=True))
    rate = [
        Series("answers/s", "#2c7fb8", [(i.second, i.responses / i.span) for i in measured]),
        Series("errors/s", "#c0392b", [(i.second, i.errors / i.span) for i in measured]),
    ]
    total = outcome.total
    dist = [
        Series("corrected" if open_model else "latency", "#c0392b", _distribution(total.latency))
    ]
    if open_model:
        dist.append(Series("uncorrected", "#2c7fb8", _distribution(total.uncorrected), dashed=True))
    charts = [
        line_chart(
            over_time, title="latency over time (ms)", x_label="second", y_format=lambda v: f"{v:g}"
        ),
        line_chart(rate, title="answers and errors per second", x_label="second"),
        line_chart(
            dist,
            title="latency by percentile (ms)",
            x_label="percentile",
            x_ticks=percentile_ticks(total.latency.count),
        ),
    ]
    warnings = "".join(
        f'<p class="warning">WARNING: {escape(w)}</p>' for w in s["client"]["warnings"]
    )
    slo = ""
    if "slo" in s:
        verdict = "met" if s["slo"]["met"] else "MISSED"
        items = "".join(
            f"<li>{escape(c['objective'])}: {c['actual']:g} {'met' if c['met'] else 'MISSED'}</li>"
            for c in s["slo"]["checks"]
        )
        slo = f"<h2>SLO {verdict}</h2><ul>{items}</ul>"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>load test: {escape(s['target'])}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Load test of {escape(s['target'])}</h1>{warnings}"
        f"<pre>{escape(table(s))}</pre>{slo}"
        + "".join(f"<figure>{c}</figure>" for c in charts)
        + "<p>Latency in the open model is <em>corrected</em>: measured from when each request "
        "should have started, so a stall counts for every request scheduled during it "
        "(coordinated omission); <em>uncorrected</em> is from when it was sent.</p>"
        "</body></html>\n"
    )


def _distribution(histogram: Histogram) -> list[tuple[float, float | None]]:
    count = histogram.count
    points: list[tuple[float, float | None]] = [(0.0, histogram.min / 1000)] if count else []
    points += [(percentile_x(p, count), v / 1000) for p, v in histogram.distribution()]
    return points


def write_outputs(outcome: Outcome, s: dict[str, Any], out: Path) -> list[Path]:
    """``summary.json``, ``seconds.csv`` and ``report.html`` in ``out`` (created)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "summary.json", out / "seconds.csv", out / "report.html"]
    paths[0].write_text(json.dumps(s, indent=2) + "\n")
    write_csv(outcome, paths[1])
    paths[2].write_text(html(outcome, s))
    return paths


__all__ = [
    "CPU_LIMIT",
    "LAG_LIMIT_MS",
    "PERCENTILES",
    "client_bound",
    "client_warnings",
    "html",
    "judge",
    "latency_ms",
    "summary",
    "table",
    "write_csv",
    "write_outputs",
]
