"""Forecast options (issue 21) at full size: the whole report, shipyard's foreach against
statsforecast's own ``n_jobs=2``, our MASE beside the Tourism competition's published ones,
and interval coverage against nominal.

    .venv/bin/python bench/forecast.py                      # everything, a table on stdout
    .venv/bin/python bench/forecast.py --write              # ... and updates BENCHMARKS.md
    .venv/bin/python bench/forecast.py --only parallel --series 40     # a quick check
    .venv/bin/python bench/forecast.py --render --write      # the section from the saved parts

Parts (``--only``):

- ``report``: ``python examples/forecast_options/flow.py run --horizon 8 --origins 4
  --max-workers 2`` over the 427 Tourism quarterly series and every family (goal: < 5 min
  on 2 cores), in a fresh SHIPYARD_HOME, measured as a process tree (wall, CPU, peak RSS);
  then its options table from the run: mean MASE per option, how much the improved option
  beats seasonal naive, the recommendation, and each option's 80% / 95% coverage against
  nominal (goal: within ±3 points).
- ``parallel``: the same work written two ways (bench/forecast/work.py: seasonal naive,
  AutoETS, AutoARIMA, AutoTheta over the 427 series at 4 origins, h = 8): shipyard's foreach,
  one task per (model, origin) with ``--max-workers 2`` (bench/forecast/foreach.py), and
  statsforecast's ``cross_validation(h=8, n_windows=4, step_size=8)`` with ``n_jobs=2``
  (bench/forecast/anchor.py); both whole processes, imports and data loading included (goal:
  shipyard no slower). Their forecasts are compared value by value (the same work).
- ``published``: from the same forecasts, each model's mean MASE (the M-competitions' scale:
  the in-sample seasonal-naive MAE of the training part) at the last origin alone — the
  competition's own set-up, one hold-out of the last 8 quarters — and over the 4 origins,
  beside the published quarterly MASE (average over h = 1–8) of Athanasopoulos, Hyndman,
  Song & Wu (2011), "The tourism forecasting competition", International Journal of
  Forecasting 27(3), 822–844, Table 5.

Each part saves what it measured to ``bench/.work/forecast/<part>.json``; the section is
written from every part saved (each says when and how it ran), so parts can be re-run alone.
The machine is shared: the section prints the command for a re-run on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SRC = REPO / "src"
EXAMPLE = REPO / "examples" / "forecast_options"
sys.path.insert(0, str(SRC))
sys.path.insert(0, str(BENCH / "forecast"))

from flows import HEADER  # noqa: E402
from measure import Measured, machine, run_measured, write_section  # noqa: E402

WORK = BENCH / ".work" / "forecast"
PARTS = ("report", "parallel", "published")
FLOW = "ForecastOptionsFlow"
GOAL_REPORT_SECONDS = 300.0
GOAL_COVERAGE_POINTS = 3.0
#: Athanasopoulos et al. (2011), Table 5 ("Forecast accuracy measures for quarterly data"),
#: MASE, column "Average 1-8"; Damped trend and ForecastPro for context
PUBLISHED_MASE = {
    "SeasonalNaive": 1.59,
    "AutoETS": 1.58,
    "AutoARIMA": 1.47,
    "AutoTheta": 1.56,
    "Damped trend": 1.43,
    "ForecastPro": 1.48,
}
#: the same paper's names for the models
PAPER_NAME = {"SeasonalNaive": "SNaïve", "AutoETS": "ETS", "AutoARIMA": "ARIMA",
              "AutoTheta": "Theta"}  # fmt: skip
#: Table 9 ("Forecast interval coverage for quarterly data"), average over h = 1-8
PUBLISHED_COVERAGE = {"ETS": (85, 94), "ARIMA": (67, 82), "ForecastPro": (83, 93)}
START, END = "<!-- bench:forecast:start -->", "<!-- bench:forecast:end -->"


def progress(message: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_HOME=str(home), PYTHONPATH=str(SRC))
    return env


def _fresh(name: str) -> Path:
    path = WORK / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _checked(measured: Measured, what: str) -> Measured:
    if not measured.ok:
        raise SystemExit(f"{what} failed (exit {measured.returncode}):\n{measured.tail(30)}")
    return measured


def _bench_json(measured: Measured) -> dict[str, Any]:
    assert measured.stdout is not None
    for line in measured.stdout.read_text().splitlines():
        if line.startswith("BENCH_JSON "):
            return dict(json.loads(line.split(" ", 1)[1]))
    return {}


# ------------------------------------------------------------------------------- report


def run_report(args: argparse.Namespace) -> dict[str, Any]:
    case = _fresh("report")
    argv = [sys.executable, str(EXAMPLE / "flow.py"), "run", "--horizon", "8",
            "--origins", str(args.origins), "--max-workers", "2"]  # fmt: skip
    if args.series:
        argv += ["--series", str(args.series)]
    progress("report: " + " ".join(argv[1:]))
    measured = _checked(
        run_measured(argv, cwd=REPO, env=_env(case / "home"), timeout=3600, log_stem=case / "flow"),
        "the forecast options flow",
    )
    out = subprocess.run(
        [sys.executable, "-c", _READ_RUN], cwd=EXAMPLE, env=_env(case / "home"),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = json.loads(out.stdout.strip().splitlines()[-1])
    progress(f"report: {measured.wall:.0f} s wall, {measured.cpu:.0f} CPU-s")
    return {**_numbers(measured), "origins": args.origins, **found}


def _numbers(measured: Measured) -> dict[str, float]:
    return {"wall": measured.wall, "cpu": measured.cpu, "peak_rss": float(measured.peak_rss)}


_READ_RUN = f"""
import json
from report import coverage_by_origin
from shipyard import Flow
run = Flow({FLOW!r}).latest_run
data = run["end"].task.data
options = data.options
choice = data.recommendation
print(json.dumps({{
    "run": run.pathspec,
    "series": int(data.scores["series_id"].nunique()),
    "options": options.to_dict(orient="records"),
    "choice": choice.family, "reason": choice.reason, "rule": choice.rule,
    "by_origin": coverage_by_origin(data.forecasts).to_dict(orient="records"),
}}))
"""


# ----------------------------------------------------------------------------- parallel


def run_parallel(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    results: dict[str, Any] = {}
    series = ["--series", str(args.series)] if args.series else []
    for name in ("shipyard", "statsforecast"):
        case = _fresh(f"parallel-{name}")
        out = case / "forecasts.pkl"
        if name == "shipyard":
            argv = [sys.executable, str(BENCH / "forecast" / "foreach.py"), "run",
                    "--out", str(out), "--max-workers", "2", *series]  # fmt: skip
        else:
            argv = [sys.executable, str(BENCH / "forecast" / "anchor.py"), str(out),
                    "--n-jobs", "2", *series]  # fmt: skip
        progress(f"parallel: {name}: " + " ".join(argv[1:]))
        measured = _checked(
            run_measured(
                argv, cwd=REPO, env=_env(case / "home"), timeout=3600, log_stem=case / name
            ),  # fmt: skip
            f"the {name} side",
        )
        progress(f"parallel: {name}: {measured.wall:.1f} s wall, {measured.cpu:.1f} CPU-s")
        results[name] = {**_numbers(measured), "frame": pd.read_pickle(out),
                         **_bench_json(measured)}  # fmt: skip
    results["difference"] = _difference(results["shipyard"]["frame"],
                                        results["statsforecast"]["frame"])  # fmt: skip
    results["series"] = int(results["statsforecast"]["frame"]["unique_id"].nunique())
    return results


def _difference(ours: Any, theirs: Any) -> dict[str, float]:
    """Per model, the largest relative difference between the two sides' forecasts."""
    from work import MODELS

    keys = ["unique_id", "ds", "cutoff"]
    both = ours.merge(theirs, on=keys, suffixes=("_a", "_b"), how="outer", indicator=True)
    unmatched = int((both["_merge"] != "both").sum())
    out: dict[str, float] = {"unmatched rows": float(unmatched)}
    for name in MODELS:
        a, b = both[f"{name}_a"], both[f"{name}_b"]
        out[name] = float(((a - b).abs() / b.abs().clip(lower=1e-9)).max())
    return out


# ---------------------------------------------------------------------------- published


def mase_table(cv: Any, history: Any, season: int) -> dict[str, dict[str, float]]:
    """Per model, mean MASE at the last origin and over all origins: each window's MAE over
    the in-sample seasonal-naive MAE of that window's training part, a series' MASE the mean
    over its windows, then the mean over series."""
    import numpy as np
    from work import MODELS

    scales = {}
    for (series_id, cutoff), _ in cv.groupby(["unique_id", "cutoff"]):
        y = history.loc[history["unique_id"] == series_id]
        train = y.loc[y["ds"] <= cutoff, "y"].to_numpy(dtype=float)
        scales[(series_id, cutoff)] = float(np.mean(np.abs(train[season:] - train[:-season])))
    cv = cv.assign(scale=[scales[(u, c)] for u, c in zip(cv["unique_id"], cv["cutoff"],
                                                          strict=True)])  # fmt: skip
    last = cv["cutoff"] == cv.groupby("unique_id")["cutoff"].transform("max")
    out: dict[str, dict[str, float]] = {}
    for name in MODELS:
        err = (cv[name] - cv["y"]).abs()
        per_window = (err / cv["scale"]).groupby([cv["unique_id"], cv["cutoff"]]).mean()
        windows = per_window.reset_index(name="mase")
        final = windows.merge(cv.loc[last, ["unique_id", "cutoff"]].drop_duplicates())
        out[name] = {
            "last": float(final["mase"].mean()),
            "all": float(windows.groupby("unique_id")["mase"].mean().mean()),
        }
    return out


# -------------------------------------------------------------------------------- table


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def render(args: argparse.Namespace, found: dict[str, Any], started: dt.datetime) -> str:
    """The section, from every part in ``found`` (each carries when and how it ran)."""
    info = machine(WORK)
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    import statsforecast

    lines = [
        "## Forecast options: the report, foreach vs statsforecast, the Tourism competition",
        "",
        f"Written {started:%Y-%m-%d %H:%M} UTC by `.venv/bin/python bench/forecast.py` (from "
        "the repository root); each part below says when and with which command it ran.",
        "",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, Linux "
        f"{info['kernel']}, Python {info['python']}; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min): the machine is "
        "shared with other sessions, so times are upper bounds.",
        f"- Versions: statsforecast {statsforecast.__version__}; shipyard from this tree.",
        "- How to read it on a shared machine: wall times are upper bounds (other sessions' "
        "work shares the 2 cores); the CPU-seconds of a process tree do not depend on the "
        "load, and on a quiet 2-core machine a run's wall time is at best its CPU-seconds / 2.",
        "",
    ]
    if "report" in found:
        lines += _report_rows(found["report"])
    if "parallel" in found:
        lines += _parallel_rows(found["parallel"])
    if "published" in found:
        lines += _published_rows(found["published"])
    lines += [
        "",
        "A re-run on a quiet machine (nothing else running): `.venv/bin/python "
        "bench/forecast.py --write`.",
    ]
    return "\n".join(lines)


def _when(part: dict[str, Any]) -> str:
    return (
        f"Ran {part['when']} UTC: `{part['command']}`; load average at its end "
        f"{part['load'][0]:.1f} / {part['load'][1]:.1f} / {part['load'][2]:.1f}."
    )


def _report_rows(report: dict[str, Any]) -> list[str]:
    options = {o["family"]: o for o in report["options"]}
    origins = report["origins"]
    wall = report["wall"]
    rows = [
        f"### The whole report: {report['series']} series x {origins} origins x every "
        f"family ({report['run']})",
        "",
        _when(report),
        "",
        "| measure | value | goal | met |",
        "|---|---|---|---|",
        f"| wall, `flow.py run --origins {origins} --max-workers 2` | {_fmt_s(wall)} | "
        f"< 5 min on 2 cores | {'yes' if wall < GOAL_REPORT_SECONDS else 'no'} |",
        f"| CPU (process tree) | {_fmt_s(report['cpu'])} |  |  |",
        f"| peak RSS (process tree) | {report['peak_rss'] / 1e6:.0f} MB |  |  |",
        "",
        "| option | mean MASE | median MASE | sMAPE % | OWA | worse than naive | 80% cover | "
        "95% cover | CPU s | series won |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, o in options.items():
        rows.append(
            f"| {name} | {o['mase_mean']:.3f} | {o['mase_median']:.3f} | {o['smape_mean']:.2f} | "
            f"{o['owa']:.3f} | {o['worse_than_naive']:.0%} | {o['coverage_80']:.1%} | "
            f"{o['coverage_95']:.1%} | {o['cpu_seconds']:.0f} | {o['wins']} |"
        )
    rows.append("")
    if "current" in options and "improved" in options:
        naive, improved = options["current"]["mase_mean"], options["improved"]["mase_mean"]
        beats = improved < naive
        rows.append(
            f"- Improved vs seasonal naive: mean MASE {improved:.3f} vs {naive:.3f}, "
            f"{abs(1 - improved / naive):.1%} {'lower' if beats else 'higher'} "
            f"(goal: lower — {'met' if beats else 'not met'})."
        )
    rows.append(f"- Recommendation: **{report['choice']}** — {report['reason']} (rule: "
                f"{report['rule']}).")  # fmt: skip
    for name, o in options.items():
        off = [
            f"{level}% at {o[f'coverage_{level}']:.1%}"
            for level in (80, 95)
            if abs(o[f"coverage_{level}"] * 100 - level) > GOAL_COVERAGE_POINTS
        ]
        verdict = (
            "within ±3 points of nominal" if not off else "outside ±3 points: " + ", ".join(off)
        )
        rows.append(f"- Coverage, {name}: {verdict}.")
    by_origin = report.get("by_origin") or []
    if by_origin:
        columns = [c for c in by_origin[0] if c != "family"]
        rows += [
            "",
            "Coverage per origin (1 the earliest; each origin's intervals calibrated on data "
            "before it only):",
            "",
            "| option | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for row in by_origin:
            cells = " | ".join(f"{row[c]:.1%}" for c in columns)
            rows.append(f"| {row['family']} | {cells} |")
    return [*rows, ""]


def _parallel_rows(parallel: dict[str, Any]) -> list[str]:
    ours, theirs = Numbers(parallel["shipyard"]), Numbers(parallel["statsforecast"])
    diff = parallel["difference"]
    faster = ours.wall <= theirs.wall
    n = parallel["series"]
    rows = [
        f"### The same work two ways: {n} series x 4 origins x (seasonal naive, AutoETS, "
        "AutoARIMA, AutoTheta), h = 8",
        "",
        _when(parallel),
        "",
        "| measure | shipyard foreach (16 tasks, `--max-workers 2`) | statsforecast "
        "`cross_validation`, `n_jobs=2` | shipyard / statsforecast |",
        "|---|---|---|---|",
        f"| wall, whole process | {_fmt_s(ours.wall)} | {_fmt_s(theirs.wall)} | "
        f"{ours.wall / theirs.wall:.2f}x |",
        f"| CPU, process tree | {_fmt_s(ours.cpu)} | {_fmt_s(theirs.cpu)} | "
        f"{ours.cpu / theirs.cpu:.2f}x |",
        f"| peak RSS, process tree | {ours.peak_rss / 1e6:.0f} MB | {theirs.peak_rss / 1e6:.0f} MB"
        f" | {ours.peak_rss / theirs.peak_rss:.2f}x |",
        "",
        f"- Goal: shipyard no slower than statsforecast's own `n_jobs=2` — "
        f"{'met' if faster else 'not met'} ({_fmt_s(ours.wall)} vs {_fmt_s(theirs.wall)}; "
        f"statsforecast's `cross_validation` call alone took "
        f"{_fmt_s(parallel['statsforecast'].get('compute_seconds', float('nan')))}).",
        "- The same forecasts: largest relative difference per model "
        + ", ".join(f"{k} {v:.1e}" for k, v in diff.items() if k != "unmatched rows")
        + f"; rows on one side only: {int(diff['unmatched rows'])}.",
        "",
    ]
    return rows


def _published_rows(published: dict[str, Any]) -> list[str]:
    table = published["table"]
    rows = [
        "### Our MASE beside the Tourism competition's published quarterly MASE",
        "",
        _when(published),
        "",
        "Published: Athanasopoulos, Hyndman, Song & Wu (2011), *The tourism forecasting "
        "competition*, International Journal of Forecasting 27(3), 822–844, Table 5, MASE, "
        'column "Average 1–8" (one hold-out: the last 8 quarters of each of the 427 series; '
        "ours: 426 of them, the one with 30 observations being too short for 4 origins). "
        "doi:10.1016/j.ijforecast.2010.04.009, the authors' copy at "
        "https://robjhyndman.com/papers/forecompijf.pdf. Ours: the forecasts above — the "
        "point forecasts of the example's families `current`, `ets`, `arima` and `theta` — "
        'scored with our MASE (the M-competitions\' scale); "last origin" is the '
        'competition\'s own set-up, "4 origins" our protocol.',
        "",
        "| model | ours, last origin | ours, 4 origins | published (IJF 2011, Table 5) | "
        "÷ seasonal naive's: ours, last origin | ÷ seasonal naive's: published |",
        "|---|---|---|---|---|---|",
    ]
    ours_naive = table.get("SeasonalNaive", {}).get("last", float("nan"))
    paper_naive = PUBLISHED_MASE["SeasonalNaive"]
    for name, paper in PAPER_NAME.items():
        if name in table:
            mine = table[name]
            rows.append(
                f"| {paper} (`{name}`) | {mine['last']:.2f} | {mine['all']:.2f} | "
                f"{PUBLISHED_MASE[name]:.2f} | {mine['last'] / ours_naive:.3f} | "
                f"{PUBLISHED_MASE[name] / paper_naive:.3f} |"
            )
    for name in ("Damped trend", "ForecastPro"):
        rows.append(
            f"| {name} | – | – | {PUBLISHED_MASE[name]:.2f} | – | "
            f"{PUBLISHED_MASE[name] / paper_naive:.3f} |"
        )
    if published["series"] < 426:
        rows.append("")
        rows.append(
            f"(on the first {published['series']} series only: not comparable with the paper)"
        )
    rows += [
        "",
        "The paper's quarterly interval coverage (Table 9, average over h = 1–8), for "
        "context: ETS 85% / 94%, ARIMA 67% / 82%, ForecastPro 83% / 93% at nominal 80% / 95%.",
        "",
    ]
    return rows


class Numbers:
    """A side's wall, CPU and peak RSS, from its saved numbers."""

    def __init__(self, found: dict[str, Any]) -> None:
        self.wall, self.cpu = float(found["wall"]), float(found["cpu"])
        self.peak_rss = float(found["peak_rss"])


def _stamp(part: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    part["when"] = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}"
    part["command"] = " ".join([".venv/bin/python bench/forecast.py", *args.argv])
    part["load"] = list(os.getloadavg())
    return part


def _save(name: str, part: dict[str, Any]) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"{name}.json").write_text(json.dumps(part, indent=1, default=str))


def _saved() -> dict[str, Any]:
    found = {}
    for name in PARTS:
        path = WORK / f"{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"of {', '.join(PARTS)}")
    parser.add_argument("--series", type=int, default=0, help="the first N series (0: 427)")
    parser.add_argument("--origins", type=int, default=4, help="origins of the report run")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument(
        "--render", action="store_true", help="run nothing: the section from the saved parts"
    )
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    args.parts = [] if args.render else [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    if "report" in args.parts:
        _save("report", _stamp(run_report(args), args))
    if "parallel" in args.parts or "published" in args.parts:
        parallel = run_parallel(args)
        frame = parallel["statsforecast"]["frame"]
        for side in ("shipyard", "statsforecast"):
            parallel[side].pop("frame")
        if "parallel" in args.parts:
            _save("parallel", _stamp(parallel, args))
        if "published" in args.parts:
            from work import tourism

            history, season, _ = tourism(args.series)
            table = mase_table(frame, history, season)
            _save("published", _stamp({"table": table, "series": parallel["series"]}, args))
    text = render(args, _saved(), started)
    print(text)
    progress(f"done in {time.perf_counter() - t0:.0f} s")
    if args.write:
        write_section(REPO / "BENCHMARKS.md", START, END, text, HEADER)
        progress("BENCHMARKS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
