"""The skew check at size: shipyard's check vs Evidently's DataDriftPreset on the same data.

    .venv/bin/python bench/skew.py                    # 1,000,000 requests x 50 features, to stdout
    .venv/bin/python bench/skew.py --write            # ... and updates BENCHMARKS.md
    .venv/bin/python bench/skew.py --rows 100000      # smaller, quicker

The data (seeded, made once per run into ``bench/.work/skew``): a training set and a serving
log of ``--rows`` rows each, 40 numeric features (normal, log-normal, integer counts, with 2%
missing values) and 10 categorical ones (5 to 2,000 distinct strings, Zipf-distributed); the
serving log drifts on 5 numeric and 2 categorical features, and its offline recompute differs
from the logged online values on 2 features for 2% of the requests.

- **shipyard**: ``shipyard.features.skew.check_skew`` in this process, everything it does:
  row-level skew (online vs offline recompute, joined by request id, all 50 features),
  distribution skew (training vs serving: JS and PSI on training quantiles, L∞ for
  categories) and prediction skew; wall time and this process's CPU time (user + sys, every
  thread), the frames already in memory.
- **Evidently** (its own venv, bench/.venvs/evidently, made on first use with the pinned
  version): ``Report([DataDriftPreset()]).run(serving, training)`` over the same columns with
  the same data definition, in a subprocess that loads the same arrays; only ``run`` is timed.
  Evidently's preset computes distribution drift only (its per-column test picked by its
  defaults: Wasserstein distance for numbers and Jensen–Shannon for categories above 1,000
  rows), no row-level or prediction check. It runs on a ``--evidently-rows`` sample
  (100,000 by default), then on the full set only when the sample's time, scaled linearly,
  says it would finish within 10 minutes -- the table says which.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from flows import HEADER
from measure import machine, write_section
from servers import BenchFailed, bench_json, ensure_venv, progress

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SRC = REPO / "src"
sys.path.insert(0, str(SRC))  # this tree's shipyard, whatever the venv's editable install says

EVIDENTLY_VERSION = "0.7.23"
N_NUMERIC, N_CATEGORICAL = 40, 10
GOAL_SECONDS = 120.0
FULL_BUDGET = 600.0  # Evidently on the full set only if projected under 10 minutes


def make_data(rows: int, seed: int, path: Path) -> dict[str, Any]:
    """The arrays of both sides (see the module docstring), saved to ``path`` (.npz)."""
    rng = np.random.default_rng(seed)

    def numeric(n: int, shift: float) -> np.ndarray:
        out = np.empty((n, N_NUMERIC), dtype=np.float64)
        for j in range(N_NUMERIC):
            s = shift if j < 5 else 0.0
            if j % 3 == 0:
                out[:, j] = rng.normal(s, 1.0, n)
            elif j % 3 == 1:
                out[:, j] = rng.lognormal(s, 0.8, n)
            else:
                out[:, j] = rng.poisson(5.0 * (1 + s), n)
            out[rng.random(n) < 0.02, j] = np.nan
        return out

    sizes = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 12][:N_CATEGORICAL]

    def categorical(n: int, drift: bool) -> np.ndarray:
        out = np.empty((n, N_CATEGORICAL), dtype=np.int16)
        for j, k in enumerate(sizes):
            weights = 1.0 / np.arange(1, k + 1) ** (1.5 if drift and j < 2 else 1.1)
            out[:, j] = rng.choice(k, n, p=weights / weights.sum())
        return out

    train_num, serve_num = numeric(rows, 0.0), numeric(rows, 0.5)
    train_cat, serve_cat = categorical(rows, False), categorical(rows, True)
    offline_num = serve_num.copy()
    bad = rng.random(rows) < 0.02
    offline_num[bad, 10] = offline_num[bad, 10] * 1000.0  # a unit change on 2% of requests
    offline_num[bad, 11] = offline_num[bad, 11] + 1.0
    arrays = {
        "train_num": train_num,
        "serve_num": serve_num,
        "offline_num": offline_num,
        "train_cat": train_cat,
        "serve_cat": serve_cat,
        "sizes": np.array(sizes),
    }
    np.savez(path, **arrays)
    return arrays


def frames(arrays: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(training, online log, offline recompute) as the DataFrames the check reads."""
    import pandas as pd

    rows = len(arrays["train_num"])
    vocab = [
        np.array([f"v{j}_{i}" for i in range(k)], dtype=object)
        for j, k in enumerate(arrays["sizes"])
    ]

    def frame(num: np.ndarray, cat: np.ndarray, ids: bool) -> Any:
        cols: dict[str, Any] = {}
        if ids:
            cols["request_id"] = np.char.add("r", np.arange(rows).astype(str)).astype(object)
        for j in range(N_NUMERIC):
            cols[f"n{j}"] = num[:, j]
        for j in range(N_CATEGORICAL):
            cols[f"c{j}"] = vocab[j][cat[:, j]]
        return pd.DataFrame(cols)

    training = frame(arrays["train_num"], arrays["train_cat"], False)
    online = frame(arrays["serve_num"], arrays["serve_cat"], True)
    online["prediction"] = np.nan_to_num(arrays["serve_num"][:, :5]).sum(axis=1)
    offline = frame(arrays["offline_num"], arrays["serve_cat"], True)
    return training, online, offline


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_shipyard(arrays: dict[str, Any]) -> dict[str, Any]:
    from shipyard.features.skew import check_skew

    training, online, offline = frames(arrays)
    replayed = online["prediction"].to_numpy().copy()
    t0, c0 = time.perf_counter(), _cpu()
    report = check_skew(
        online, offline=offline, training=training, prediction="prediction", replayed=replayed
    )
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    drifted = sorted({f["feature"] for f in report.flagged if f["check"] != "row"} - {"prediction"})
    rows = sorted(f["feature"] for f in report.flagged if f["check"] == "row")
    return {"wall": wall, "cpu": cpu, "drifted": drifted, "row_flagged": rows}


EVIDENTLY_SCRIPT = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

path, rows, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = np.load(path)
n = len(a["train_num"])
take = slice(None)
if rows < n:
    take = np.sort(np.random.default_rng(seed).choice(n, rows, replace=False))
vocab = [np.array([f"v{j}_{i}" for i in range(k)], dtype=object) for j, k in enumerate(a["sizes"])]

def frame(num, cat):
    num, cat = num[take], cat[take]
    cols = {f"n{j}": num[:, j] for j in range(num.shape[1])}
    cols.update({f"c{j}": vocab[j][cat[:, j]] for j in range(cat.shape[1])})
    return pd.DataFrame(cols)

train, serve = frame(a["train_num"], a["train_cat"]), frame(a["serve_num"], a["serve_cat"])
definition = DataDefinition(
    numerical_columns=[c for c in train.columns if c.startswith("n")],
    categorical_columns=[c for c in train.columns if c.startswith("c")],
)
reference = Dataset.from_pandas(train, data_definition=definition)
current = Dataset.from_pandas(serve, data_definition=definition)
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
t0, c0 = time.perf_counter(), cpu()
snapshot = Report([DataDriftPreset()]).run(current, reference)
wall, spent = time.perf_counter() - t0, cpu() - c0
drifted = []
for metric in snapshot.dict().get("metrics", []):
    config, value = metric.get("config", {}), metric.get("value")
    if str(config.get("type", "")).endswith("ValueDrift") and isinstance(value, (int, float)):
        drifted.append((config["column"], config["method"], float(value), config["threshold"]))
out = {"wall": wall, "cpu": spent, "rows": len(train), "values": drifted}
print("BENCH_JSON " + json.dumps(out))
"""


def ensure_evidently() -> Path:
    return ensure_venv(
        BENCH / ".venvs" / "evidently",
        "import evidently, pandas; print(evidently.__version__, pandas.__version__)",
        f"{EVIDENTLY_VERSION} 2.3.3",
        [f"evidently=={EVIDENTLY_VERSION}", "pandas==2.3.3"],
        timeout=1200,
    )


def run_evidently(python: Path, data: Path, rows: int, seed: int) -> dict[str, Any]:
    progress(f"Evidently DataDriftPreset on {rows:,} rows")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["DO_NOT_TRACK"] = "1"
    done = subprocess.run(
        [str(python), "-c", EVIDENTLY_SCRIPT, str(data), str(rows), str(seed)],
        capture_output=True,
        text=True,
        env=env,
        timeout=4 * FULL_BUDGET,
    )
    result = bench_json(done.stdout)
    if done.returncode != 0 or result is None:
        raise BenchFailed(f"Evidently failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return result


def _s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 60:.1f} min"


def section(
    rows: int,
    ours: dict[str, Any],
    ours_sample: dict[str, Any] | None,
    theirs: list[dict[str, Any]],
    skipped_full: str,
    info: dict[str, str],
) -> str:
    lines = [
        "## Skew check: shipyard's check vs Evidently's DataDriftPreset, same data, same run",
        "",
        f"- When: {info['when']}; command: `{info['command']}`",
        f"- Machine: {info['machine']}; shared with other work: 1-minute load average "
        f"{info['load_start']} at the start, {info['load_end']} at the end",
        f"- Data: a training set and a serving log of {rows:,} rows each, {N_NUMERIC} numeric and "
        f"{N_CATEGORICAL} categorical features (seeded; drift planted on 5 numeric and 2 "
        "categorical features, row-level skew on 2 features for 2% of requests)",
        f"- Versions: Evidently {EVIDENTLY_VERSION} (its own venv), numpy {np.__version__}",
        "",
        "| tool | rows | what it computes | wall | CPU (user+sys) | drifted features found | "
        "row-level skew found |",
        "|---|---|---|---|---|---|---|",
    ]
    what = "row-level (50 features, by request id) + distribution (JS, PSI, L∞) + prediction"
    lines.append(
        f"| shipyard | {rows:,} | {what} | {_s(ours['wall'])} | {_s(ours['cpu'])} | "
        f"{len(ours['drifted'])}: {', '.join(ours['drifted'])} | {', '.join(ours['row_flagged'])} |"
    )
    if ours_sample is not None:
        sample_rows = theirs[0]["rows"]
        lines.append(
            f"| shipyard | {sample_rows:,} (sample) | the same | {_s(ours_sample['wall'])} | "
            f"{_s(ours_sample['cpu'])} | {len(ours_sample['drifted'])} | "
            f"{', '.join(ours_sample['row_flagged'])} |"
        )
    for t in theirs:
        found = sorted(c for c, _, v, limit in t["values"] if v >= limit)
        lines.append(
            f"| Evidently DataDriftPreset | {t['rows']:,}{' (sample)' if t['rows'] < rows else ''} "
            f"| distribution only (its default tests) | {_s(t['wall'])} | {_s(t['cpu'])} | "
            f"{len(found)}: {', '.join(found)} | — |"
        )
    methods = "; ".join(
        sorted({f"{m} ≥ {limit}" for t in theirs for _, m, _, limit in t["values"]})
    )
    lines.append("")
    goal = "yes" if ours["wall"] < GOAL_SECONDS else "NO"
    lines.append(f"- Goal (the check over {rows:,} × 50 in < 2 minutes on 2 cores): {goal}.")
    lines.append(
        "- Wall time on a shared machine includes waiting for a core (see the load average "
        "above); CPU time (user + sys of the process, all threads) is what each tool spent."
    )
    if skipped_full:
        lines.append(f"- Evidently on the full set: {skipped_full}")
    lines.append(
        "- Drifted features: for Evidently, the columns whose drift score reaches the threshold "
        f"its preset chose ({methods}); for shipyard, JS > 0.1 or PSI > 0.25 or L∞ > 0.1 (its "
        "documented defaults). Planted: n0–n4 (a shift of half a standard deviation, near both "
        "tools' thresholds) and c0, c1; anything else found is sampling noise."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--evidently-rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)
    workdir = BENCH / ".work" / "skew"
    workdir.mkdir(parents=True, exist_ok=True)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_start = f"{os.getloadavg()[0]:.2f}"
    python = ensure_evidently()
    data = workdir / "data.npz"
    progress(f"making {args.rows:,} x {N_NUMERIC + N_CATEGORICAL} of data")
    arrays = make_data(args.rows, args.seed, data)
    progress("shipyard's check on the full set")
    ours = run_shipyard(arrays)
    progress(f"shipyard: {ours['wall']:.1f} s wall, {ours['cpu']:.1f} s CPU")
    theirs: list[dict[str, Any]] = []
    ours_sample = None
    skipped_full = ""
    sample = min(args.evidently_rows, args.rows)
    theirs.append(run_evidently(python, data, sample, args.seed))
    progress(f"Evidently ({sample:,}): {theirs[0]['wall']:.1f} s")
    if sample < args.rows:
        take = np.sort(np.random.default_rng(args.seed).choice(args.rows, sample, replace=False))
        sub = {k: (v[take] if k != "sizes" else v) for k, v in arrays.items()}
        ours_sample = run_shipyard(sub)
        projected = theirs[0]["wall"] * args.rows / sample
        if projected <= FULL_BUDGET:
            theirs.append(run_evidently(python, data, args.rows, args.seed))
        else:
            skipped_full = (
                f"not run: {sample:,} rows took {_s(theirs[0]['wall'])}, so {args.rows:,} would "
                f"take about {_s(projected)} scaled linearly (over the 10-minute budget); its "
                "rows above are the sample, and shipyard's check is shown on the same sample."
            )
    words = sys.argv[1:] if argv is None else argv
    m = machine(workdir)
    info = {
        "when": when,
        "command": " ".join([".venv/bin/python bench/skew.py", *words]),
        "machine": f"{m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}, "
        f"Python {m['python']}",
        "load_start": load_start,
        "load_end": f"{os.getloadavg()[0]:.2f}",
    }
    text = section(args.rows, ours, ours_sample, theirs, skipped_full, info)
    print(text)
    if args.write:
        start, end = "<!-- bench:skew:start -->", "<!-- bench:skew:end -->"
        write_section(REPO / "BENCHMARKS.md", start, end, text, HEADER)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
