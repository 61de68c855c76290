"""Flows benchmark: Metaflow and shipyard side by side, on this machine, in the same run.

    .venv/bin/python bench/flows.py                      # every case, prints a markdown table
    .venv/bin/python bench/flows.py --write              # ... and updates BENCHMARKS.md
    .venv/bin/python bench/flows.py --only a,b --reps 5 --tools metaflow

Cases (from the issue), each tool with 2 workers, each repetition in fresh temporary dirs:

- import: ``python -X importtime -c "import X"`` (cumulative ms of the top-level module) and
  the wall time of ``python -c "import X"`` minus ``python -c pass`` (medians).
- (a) bench/flows/linear.py, a linear flow of 10 trivial steps.
- (b) bench/flows/foreach.py, start -> foreach over 100 trivial tasks -> join -> end.
- (b') the same flow with its join failing (BENCH_FAIL_JOIN=1), then ``python flow.py resume``
  timed: it must reuse the 101 finished tasks and re-run only the join and the end.
- (c) bench/flows/bigarray.py, one step saves a 500 MB numpy array, the next loads it; beside
  it the floor: ``numpy.save`` to the same disk + fsync, then ``np.load``.

The flow files are plain Metaflow flows; shipyard runs a copy whose ``from metaflow import``
line reads ``from shipyard import`` (shipyard's promise: a flow ports with an import change).
Metaflow runs from its own venv (bench/.venvs/metaflow, created on first use with a pinned
version), with its local metadata and datastore in the case's temporary directory; shipyard
runs from /work/main/.venv with a temporary SHIPYARD_HOME. Every command is a subprocess of
the tool's python, measured by bench/measure.py: wall time, CPU-seconds of the whole process
tree (os.wait4), and peak memory of the tree (RSS and PSS summed, sampled every ~20 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from measure import MB, ImportCost, Measured, import_cost, machine, run_measured, run_text
from measure import write_section as write_markdown_section

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FLOWS = BENCH / "flows"
METAFLOW_VERSION = "2.19.39"  # newest on PyPI when this benchmark was written
WORKERS = 2
START, END = "<!-- bench:flows:start -->", "<!-- bench:flows:end -->"
HEADER = """# Benchmarks

Numbers measured by the scripts in `bench/`, each section written by its script with the
machine, the versions and the exact command; rerun a script to refresh its section.
"""
CASES = ("import", "a", "b", "c")  # (b') runs as part of (b)
TOOLS = ("metaflow", "shipyard")
_T0 = time.perf_counter()


def progress(message: str) -> None:
    """One progress line on stderr (stdout is kept for the table)."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tool:
    """One of the two flow engines: where its python is and how to run a flow with it."""

    name: str
    display: str  # "Metaflow" / "shipyard"
    python: Path
    module: str  # what the flow files import from

    def env(self, case_dir: Path) -> dict[str, str]:
        """The environment for one case: nothing inherited that could point elsewhere."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("METAFLOW_", "SHIPYARD_", "PYTHON", "BENCH_"))
            and key != "VIRTUAL_ENV"
        }
        venv = self.python.parent.parent
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["USERNAME"] = "bench"
        if self.name == "metaflow":
            env["METAFLOW_HOME"] = str(case_dir / "metaflow-config")
            env["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = str(case_dir)  # it adds .metaflow
            env["METAFLOW_DEFAULT_METADATA"] = "local"
            env["METAFLOW_DEFAULT_DATASTORE"] = "local"
        else:
            env["SHIPYARD_HOME"] = str(case_dir / "shipyard-home")
        return env

    def copy_flow(self, source: Path, case_dir: Path) -> Path:
        """Copy a flow file into ``case_dir``, importing from this tool."""
        text = source.read_text()
        old = "from metaflow import "
        if text.count(old) != 1:
            raise RuntimeError(f"{source}: expected exactly one line starting {old!r}")
        target = case_dir / source.name
        target.write_text(text.replace(old, f"from {self.module} import "))
        return target

    def version(self) -> str:
        """The installed version, read by the tool's own python; shipyard adds its commit."""
        code = f"import importlib.metadata as m; print(m.version({self.name!r}))"
        version = run_text([str(self.python), "-c", code], timeout=60).strip()
        if self.name == "shipyard":
            version += f" ({git_state()})"
        return version


def git_state() -> str:
    """``git abc1234`` of the checkout, ``+ changes`` when tracked files differ (read-only)."""
    git = ["git", "-C", str(REPO)]
    try:
        commit = run_text([*git, "rev-parse", "--short", "HEAD"], timeout=30).strip()
        dirty = run_text([*git, "status", "--porcelain", "--untracked-files=no"], timeout=30)
    except (RuntimeError, OSError):
        return "no git commit"
    return f"git {commit}" + (" + uncommitted changes" if dirty.strip() else "")


def ensure_metaflow(venv: Path, version: str) -> Path:
    """The python of ``venv`` with metaflow==version and the driver's numpy, made if missing."""
    python = venv / "bin" / "python"
    numpy_version = importlib.metadata.version("numpy")
    want = f"{version} {numpy_version}"
    check = "import metaflow, numpy; print(metaflow.__version__, numpy.__version__)"
    if python.exists():
        try:
            if run_text([str(python), "-c", check], timeout=120).strip() == want:
                return python
        except RuntimeError:
            pass
    if not python.exists():
        progress(f"creating {venv}")
        run_text([sys.executable, "-m", "venv", str(venv)], timeout=300)
    progress(f"installing metaflow=={version} numpy=={numpy_version} into {venv}")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run_text([*pip, f"metaflow=={version}", f"numpy=={numpy_version}"], timeout=900)
    got = run_text([str(python), "-c", check], timeout=120).strip()
    if got != want:
        raise RuntimeError(f"{venv}: wanted metaflow/numpy {want}, got {got}")
    return python


# --------------------------------------------------------------------------- results


@dataclass
class Sample:
    """One repetition of one case by one tool."""

    measured: Measured
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Results:
    """Everything measured, keyed by (case, tool)."""

    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    imports: dict[tuple[str, str], ImportCost] = field(default_factory=dict)  # (key, tool)

    def add(self, case: str, tool: str, sample: Sample) -> None:
        self.samples.setdefault((case, tool), []).append(sample)

    def failed(self, case: str, tool: str) -> bool:
        return (case, tool) in self.errors

    def values(self, case: str, tool: str, get: Callable[[Sample], float]) -> list[float]:
        return [get(s) for s in self.samples.get((case, tool), [])]


class CaseFailed(Exception):
    """A tool could not run a case; the message says what happened and where the logs are."""


@dataclass
class Context:
    """Options and shared state of one benchmark run."""

    args: argparse.Namespace
    tools: list[Tool]
    results: Results
    workdir: Path

    def case_dir(self, label: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.workdir))

    def done_with(self, case_dir: Path) -> None:
        if not self.args.keep:
            shutil.rmtree(case_dir, ignore_errors=True)

    def flow(
        self,
        tool: Tool,
        flow_file: Path,
        case_dir: Path,
        argv: list[str],
        *,
        label: str,
        env: Mapping[str, str] | None = None,
        expect_ok: bool = True,
        expect_failure_with: str = "",
    ) -> Measured:
        """Run ``python flow.py <argv>`` with ``tool`` in ``case_dir``, measured."""
        full_env = tool.env(case_dir)
        full_env.update(env or {})
        (case_dir / "logs").mkdir(exist_ok=True)
        # Write back what the previous command left dirty first: otherwise the first fsync
        # of this one pays for the other tool's thousands of files.
        os.sync()
        measured = run_measured(
            [str(tool.python), flow_file.name, *argv],
            cwd=case_dir,
            env=full_env,
            timeout=self.args.timeout,
            log_stem=case_dir / "logs" / label,
        )
        if measured.leftovers:
            progress(f"  warning: {tool.name} left processes running: {measured.leftovers}")
        if measured.timed_out:
            raise CaseFailed(f"timed out after {self.args.timeout:g} s in {case_dir}")
        if expect_ok and not measured.ok:
            raise CaseFailed(
                f"`{' '.join(argv)}` exited {measured.returncode}; logs in {case_dir / 'logs'}\n"
                + measured.tail()
            )
        if not expect_ok and measured.ok:
            raise CaseFailed(f"`{' '.join(argv)}` should have failed but exited 0 ({case_dir})")
        if expect_failure_with and expect_failure_with not in measured.tail(400):
            raise CaseFailed(
                f"`{' '.join(argv)}` failed, but not with {expect_failure_with!r}; logs in "
                f"{case_dir / 'logs'}\n" + measured.tail()
            )
        return measured


def describe(m: Measured) -> str:
    return (
        f"{m.wall:.2f} s wall, {m.cpu:.2f} CPU-s, peak RSS {m.peak_rss / MB:.0f} MB "
        f"(PSS {m.peak_pss / MB:.0f} MB, {m.max_procs} procs, sampler {m.sampler_cpu:.2f} CPU-s)"
    )


# --------------------------------------------------------------------------- cases


IMPORTS = {  # key -> statement; X is the tool's module
    "import": "import X",
    "from": "from X import FlowSpec, step",  # what a flow file runs: shipyard imports lazily
}


def case_import(ctx: Context) -> None:
    for tool in ctx.tools:
        case_dir = ctx.case_dir(f"import-{tool.name}")
        for key, template in IMPORTS.items():
            statement = template.replace("X", tool.module)
            progress(f"import: `{statement}`, {ctx.args.import_reps} reps")
            try:
                cost = import_cost(
                    tool.python,
                    statement,
                    reps=ctx.args.import_reps,
                    env=tool.env(case_dir),
                    cwd=case_dir,
                )
            except (RuntimeError, subprocess.SubprocessError) as exc:
                ctx.results.errors[("import", tool.name)] = str(exc).splitlines()[-1][:200]
                progress(f"  {tool.name}: FAILED: {exc}")
                continue
            ctx.results.imports[(key, tool.name)] = cost
            progress(
                f"  -X importtime {cost.importtime_ms:.1f} ms; wall {cost.wall * 1000:.0f} ms "
                f"vs {cost.wall_pass * 1000:.0f} ms for `-c pass`"
            )
        ctx.done_with(case_dir)


def repeat(ctx: Context, case: str, reps: int, one: Callable[[Tool, int], None]) -> None:
    """Run ``one(tool, rep)`` for every rep, tools interleaved; a failure stops that tool."""
    for rep in range(1, reps + 1):
        for tool in ctx.tools:
            if ctx.results.failed(case, tool.name):
                continue
            progress(f"({case}) {tool.name} rep {rep}/{reps}")
            try:
                one(tool, rep)
            except CaseFailed as exc:
                ctx.results.errors[(case, tool.name)] = str(exc).splitlines()[0][:300]
                progress(f"  {tool.name}: FAILED: {exc}")


def warm_up(ctx: Context) -> None:
    """One untimed linear run per tool, so the first timed case does not pay cold caches."""
    for tool in ctx.tools:
        progress(f"warm-up: linear flow with {tool.name} (not timed)")
        case_dir = ctx.case_dir(f"warmup-{tool.name}")
        flow = tool.copy_flow(FLOWS / "linear.py", case_dir)
        try:
            ctx.flow(tool, flow, case_dir, run_argv(), label="warmup")
        except CaseFailed as exc:
            progress(f"  {tool.name}: warm-up failed: {str(exc).splitlines()[0]}")
        ctx.done_with(case_dir)


def run_argv() -> list[str]:
    return ["run", "--max-workers", str(WORKERS)]


def case_a(ctx: Context) -> None:
    def one(tool: Tool, rep: int) -> None:
        case_dir = ctx.case_dir(f"a-{tool.name}-{rep}")
        flow = tool.copy_flow(FLOWS / "linear.py", case_dir)
        measured = ctx.flow(tool, flow, case_dir, run_argv(), label="run")
        ctx.results.add("a", tool.name, Sample(measured))
        progress(f"  {describe(measured)}")
        ctx.done_with(case_dir)

    repeat(ctx, "a", ctx.args.reps, one)


def case_b(ctx: Context) -> None:
    n_env = {"BENCH_FOREACH_N": str(ctx.args.foreach_n)}

    def one(tool: Tool, rep: int) -> None:
        case_dir = ctx.case_dir(f"b-{tool.name}-{rep}")
        flow = tool.copy_flow(FLOWS / "foreach.py", case_dir)
        measured = ctx.flow(tool, flow, case_dir, run_argv(), label="run", env=n_env)
        ctx.results.add("b", tool.name, Sample(measured))
        progress(f"  {describe(measured)}")
        ctx.done_with(case_dir)

    def one_resume(tool: Tool, rep: int) -> None:
        case_dir = ctx.case_dir(f"b-resume-{tool.name}-{rep}")
        flow = tool.copy_flow(FLOWS / "foreach.py", case_dir)
        failing = ctx.flow(
            tool,
            flow,
            case_dir,
            run_argv(),
            label="run-failing",
            env={**n_env, "BENCH_FAIL_JOIN": "1"},
            expect_ok=False,
            expect_failure_with="join fails on purpose",
        )
        progress(f"  failing run (not timed): {failing.wall:.2f} s, exit {failing.returncode}")
        resume = ["resume", "--max-workers", str(WORKERS)]
        measured = ctx.flow(tool, flow, case_dir, resume, label="resume", env=n_env)
        ctx.results.add("b'", tool.name, Sample(measured))
        progress(f"  resume: {describe(measured)}")
        ctx.done_with(case_dir)

    repeat(ctx, "b", ctx.args.reps, one)
    repeat(ctx, "b'", ctx.args.reps, one_resume)


FLOOR = """\
import json, os, sys, time
import numpy as np

n, path = int(sys.argv[1]), sys.argv[2]
array = np.random.default_rng(0).random(n)
t0 = time.perf_counter()
with open(path, "wb") as f:
    np.save(f, array)
    f.flush()
    os.fsync(f.fileno())
t1 = time.perf_counter()
shape = array.shape
del array  # the loading step of the flow does not hold the saved copy either
t2 = time.perf_counter()
loaded = np.load(path)
t3 = time.perf_counter()
assert loaded.shape == shape
print(json.dumps({"save_fsync": t1 - t0, "load": t3 - t2}))
"""


def read_stamps(path: Path) -> dict[str, float]:
    stamps = {}
    for line in path.read_text().splitlines():
        label, value = line.split()
        stamps[label] = float(value)
    missing = {"saved", "loaded", "sum_seconds"} - stamps.keys()
    if missing:
        raise CaseFailed(f"{path}: the flow did not write {sorted(missing)}")
    return stamps


def case_c(ctx: Context) -> None:
    n = ctx.args.array_mb * MB // 8 if ctx.args.array_mb != 500 else 62_500_000
    data_env = {"BENCH_ARRAY_N": str(n)}
    main_python = Path(sys.executable)

    for rep in range(1, ctx.args.reps_c + 1):
        progress(f"(c) floor: numpy.save + fsync, np.load of {n * 8 / 1e6:.0f} MB, rep {rep}")
        case_dir = ctx.case_dir(f"c-floor-{rep}")
        (case_dir / "floor.py").write_text(FLOOR)
        measured = run_measured(
            [str(main_python), "floor.py", str(n), str(case_dir / "array.npy")],
            cwd=case_dir,
            env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
            timeout=ctx.args.timeout,
            log_stem=case_dir / "floor",
        )
        if not measured.ok:
            ctx.results.errors[("c", "floor")] = f"the numpy floor failed; logs in {case_dir}"
            progress(f"  floor FAILED:\n{measured.tail()}")
            break
        assert measured.stdout is not None
        floor = json.loads(measured.stdout.read_text())
        ctx.results.add("floor", "numpy", Sample(measured, floor))
        progress(f"  save+fsync {floor['save_fsync']:.2f} s, load {floor['load']:.2f} s")
        ctx.done_with(case_dir)

    def one(tool: Tool, rep: int) -> None:
        case_dir = ctx.case_dir(f"c-{tool.name}-{rep}")
        flow = tool.copy_flow(FLOWS / "bigarray.py", case_dir)
        times = case_dir / "times.txt"
        env = {**data_env, "BENCH_TIMES_FILE": str(times)}
        measured = ctx.flow(tool, flow, case_dir, run_argv(), label="run", env=env)
        stamps = read_stamps(times)
        handoff = stamps["loaded"] - stamps["saved"] - stamps["sum_seconds"]
        ctx.results.add("c", tool.name, Sample(measured, {"handoff": handoff}))
        progress(f"  {describe(measured)}; hand-off {handoff:.2f} s")
        ctx.done_with(case_dir)

    repeat(ctx, "c", ctx.args.reps_c, one)


# --------------------------------------------------------------------------- report


def fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.1f}x"
    if unit == "s":
        return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    return f"{value:.0f} {unit}"


def cell(values: list[float], unit: str) -> str:
    """Median, with the range when there is more than one value."""
    if not values:
        return "—"
    text = fmt(statistics.median(values), unit)
    if len(values) > 1:
        low, high = fmt(min(values), unit).split()[0], fmt(max(values), unit).split()[0]
        text += f" ({low}–{high})"
    return text


@dataclass
class Row:
    """One line of the table."""

    case: str
    measure: str
    unit: str
    values: dict[str, list[float]]
    goal: str = ""
    met: str = ""

    def median(self, tool: str) -> float | None:
        values = self.values.get(tool) or []
        return statistics.median(values) if values else None

    def ratio(self) -> str:
        mf, sy = self.median("metaflow"), self.median("shipyard")
        if mf is None or sy is None or sy <= 0:
            return "—"
        return f"{mf / sy:.1f}x"


def floor_median(res: Results) -> float | None:
    """Median seconds of numpy.save + fsync + np.load, the floor of (c)."""
    floor = [
        s.extra["save_fsync"] + s.extra["load"] for s in res.samples.get(("floor", "numpy"), [])
    ]
    return statistics.median(floor) if floor else None


def floor_line(res: Results, array_mb: int) -> str:
    samples = res.samples.get(("floor", "numpy"), [])
    if not samples:
        return ""
    save = cell([s.extra["save_fsync"] for s in samples], "s")
    load = cell([s.extra["load"] for s in samples], "s")
    rss = cell([s.measured.peak_rss / MB for s in samples], "MB")
    return (
        f"Floor for (c), numpy alone on the same disk, {array_mb} MB: `numpy.save` + `fsync` "
        f"{save}, `np.load` {load}; peak RSS of that process {rss}."
    )


def build_rows(ctx: Context) -> list[Row]:
    res = ctx.results
    names = [t.name for t in ctx.tools]
    rows: list[Row] = []

    def flow_values(case: str, get: Callable[[Sample], float]) -> dict[str, list[float]]:
        return {name: res.values(case, name, get) for name in names}

    def judge(value: float | None, ok: Callable[[float], bool]) -> str:
        if value is None:
            return "—"
        return "yes" if ok(value) else "**no**"

    def ratio_judge(row: Row, at_least: float) -> str:
        mf, sy = row.median("metaflow"), row.median("shipyard")
        if mf is None or sy is None or sy <= 0:
            return "—"
        return "yes" if mf / sy >= at_least else "**no**"

    if "import" in ctx.args.only:
        for key, template in IMPORTS.items():
            costs = {t: [c] for (k, t), c in res.imports.items() if k == key}
            rows.append(
                Row(
                    "import",
                    f"`{template}`: `-X importtime` total",
                    "ms",
                    {t: [c[0].importtime_ms] for t, c in costs.items()},
                )
            )
            rows.append(
                Row(
                    "import",
                    f"`{template}`: wall over `-c pass`",
                    "ms",
                    {t: [c[0].wall_delta * 1000] for t, c in costs.items()},
                )
            )
        passes = {t: [c.wall_pass * 1000] for (k, t), c in res.imports.items() if k == "import"}
        rows.append(Row("import", "`python -c pass`: wall", "ms", passes))

    def common(case: str, label: str) -> list[Row]:
        return [
            Row(case, f"{label}: wall", "s", flow_values(case, lambda s: s.measured.wall)),
            Row(case, f"{label}: CPU (tree)", "s", flow_values(case, lambda s: s.measured.cpu)),
            Row(
                case,
                f"{label}: peak RSS (tree)",
                "MB",
                flow_values(case, lambda s: s.measured.peak_rss / MB),
            ),
            Row(
                case,
                f"{label}: peak PSS (tree)",
                "MB",
                flow_values(case, lambda s: s.measured.peak_pss / MB),
            ),
        ]

    if "a" in ctx.args.only:
        a_rows = common("a", "10 linear steps")
        a_rows[0].goal = "≥10x faster than Metaflow"
        a_rows[0].met = ratio_judge(a_rows[0], 10)
        rows += a_rows

    if "b" in ctx.args.only:
        n_tasks = ctx.args.foreach_n + 3
        b_rows = common("b", f"foreach {ctx.args.foreach_n}")
        b_rows[0].goal = "≥20x faster than Metaflow"
        b_rows[0].met = ratio_judge(b_rows[0], 20)
        per_task_cpu = Row(
            "b",
            f"CPU per task ({n_tasks} tasks)",
            "ms",
            flow_values("b", lambda s: s.measured.cpu / n_tasks * 1000),
            goal="≤20 ms overhead per task (CPU)",
        )
        per_task_cpu.met = judge(per_task_cpu.median("shipyard"), lambda v: v <= 20)
        per_task_wall = Row(
            "b",
            f"wall per task ({WORKERS} workers)",
            "ms",
            flow_values("b", lambda s: s.measured.wall / n_tasks * 1000),
        )
        rows += b_rows[:2] + [per_task_cpu, per_task_wall] + b_rows[2:]
        r_rows = common("b'", "resume from the join")
        r_rows[0].goal = "≤0.5 s"
        r_rows[0].met = judge(r_rows[0].median("shipyard"), lambda v: v <= 0.5)
        rows += r_rows

    if "c" in ctx.args.only:
        mb = f"{ctx.args.array_mb} MB array"
        c_rows = common("c", f"{mb} flow")
        floor = floor_median(res)
        handoff = Row(
            "c",
            "hand-off: artifact save → next step loaded",
            "s",
            flow_values("c", lambda s: s.extra["handoff"]),
        )
        over_floor = Row(
            "c",
            "hand-off ÷ floor (numpy.save + fsync + np.load)",
            "x",
            flow_values("c", lambda s: s.extra["handoff"] / floor if floor else float("nan")),
            goal="≤2x",
        )
        over_floor.met = judge(over_floor.median("shipyard"), lambda v: v <= 2)
        rows += [c_rows[0], handoff, over_floor, *c_rows[1:]]
    return rows


def table(ctx: Context, rows: list[Row], versions: Mapping[str, str]) -> str:
    names = [t.name for t in ctx.tools]
    display = {t.name: f"{t.display} {versions.get(t.name, '?')}" for t in ctx.tools}
    head = ["case", "measure", *[display[n] for n in names]]
    both = len(names) == 2
    if both:
        head.append("Metaflow / shipyard")
    head += ["goal (shipyard)", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.case, row.measure]
        for name in names:
            if ctx.results.failed(row.case, name) and not row.values.get(name):
                cells.append("failed")
            else:
                cells.append(cell(row.values.get(name, []), row.unit))
        if both:
            cells.append("" if row.unit == "x" else row.ratio())
        cells += [row.goal, row.met]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def failures(ctx: Context) -> str:
    if not ctx.results.errors:
        return ""
    lines = ["Failures:", ""]
    for (case, tool), message in sorted(ctx.results.errors.items()):
        lines.append(f"- ({case}) {tool}: {message.splitlines()[0]}")
    return "\n".join(lines)


def section(
    ctx: Context, rows: list[Row], versions: Mapping[str, str], info: dict[str, str]
) -> str:
    args = ctx.args
    command = shlex.join([".venv/bin/python", "bench/flows.py", *sys.argv[1:]])
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    version_lines = []
    for tool in ctx.tools:
        where = (
            tool.python.parent.parent.relative_to(REPO)
            if tool.python.is_relative_to(REPO)
            else tool.python
        )
        version_lines.append(f"{tool.display} {versions.get(tool.name, '?')} (`{where}`)")
    parts = [
        "## Flows: Metaflow and shipyard side by side",
        "",
        f"Measured {now} with `{command}` (from the repository root).",
        "",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, "
        f"Linux {info['kernel']}, Python {info['python']}; disk: {info['disk']}.",
        f"- Versions: {', '.join(version_lines)}; numpy {importlib.metadata.version('numpy')}.",
        f"- {WORKERS} workers for both tools (`--max-workers {WORKERS}`); medians of "
        f"{args.reps} runs for (a), (b), (b') and {args.reps_c} for (c), range in parentheses; "
        f"each run in fresh temporary directories on the disk above, after an `os.sync()` "
        f"(so that no run pays for writing back what the one before it left dirty).",
        "",
        table(ctx, rows, versions),
        "",
        floor_line(ctx.results, args.array_mb),
        "",
        "How to read it:",
        "",
        "- wall: from the fork of `python flow.py run ...` to its exit. CPU: user + sys of the "
        "whole process tree (`os.wait4`). Peak RSS / PSS: the largest sum over the tree, "
        "sampled every 20 ms (PSS every 100 ms); PSS splits pages shared after a fork, so it is "
        "the fair number "
        "for a tool that forks its tasks.",
        f"- (b) counts {args.foreach_n + 3} tasks (start, {args.foreach_n} foreach tasks, "
        "join, end); the tasks are trivial, so CPU per task is all engine overhead. "
        "(b') is `python flow.py resume` after a run whose join raised: it must reuse the "
        f"{args.foreach_n + 1} finished tasks.",
        "- (c) hand-off: from the end of the saving step's code to the next step having read "
        "every page of the array (minus the time of an in-memory sum), i.e. persist + "
        "schedule + load. The floor is `numpy.save` + `fsync` + `np.load` of the same array "
        "in one process on the same disk.",
        "- import: `-X importtime` total is the sum of the cumulative times of the top-level "
        "imports of `python -c STATEMENT` minus that of `python -c pass` (so the lazy imports "
        "that `from X import FlowSpec` triggers count); wall is the median of "
        f"{args.import_reps} `python -c STATEMENT` minus the median of as many `python -c "
        "pass`, each in its tool's venv.",
    ]
    fails = failures(ctx)
    if fails:
        parts += ["", fails]
    return "\n".join(parts)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Metaflow against shipyard on the flow cases of the issue.",
    )
    parser.add_argument("--only", default=",".join(CASES), help="cases: import,a,b,c")
    parser.add_argument("--tools", default=",".join(TOOLS), help="metaflow,shipyard")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of (a), (b), (b')")
    parser.add_argument("--reps-c", type=int, default=1, help="repetitions of (c)")
    parser.add_argument("--import-reps", type=int, default=7, help="repetitions of imports")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument("--foreach-n", type=int, default=100, help="width of (b)'s foreach")
    parser.add_argument("--array-mb", type=int, default=500, help="size of (c)'s array")
    parser.add_argument("--workdir", type=Path, default=BENCH / ".work", help="temp dirs here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up")
    parser.add_argument("--metaflow-venv", type=Path, default=BENCH / ".venvs" / "metaflow")
    parser.add_argument("--shipyard-python", type=Path, default=REPO / ".venv" / "bin" / "python")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--benchmarks", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="also write every raw measurement here")
    args = parser.parse_args(argv)
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for bad in set(args.only) - set(CASES):
        parser.error(f"--only: unknown case {bad!r}; choose from {', '.join(CASES)}")
    for bad in set(args.tools) - set(TOOLS):
        parser.error(f"--tools: unknown tool {bad!r}; choose from {', '.join(TOOLS)}")
    if args.reps < 1 or args.reps_c < 1 or args.import_reps < 1:
        parser.error("--reps, --reps-c and --import-reps must be at least 1")
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through run_measured, which then ends the command it is running.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args.workdir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="flows-", dir=args.workdir))
    tools = []
    versions: dict[str, str] = {}
    for name in args.tools:
        if name == "metaflow":
            python = ensure_metaflow(args.metaflow_venv, METAFLOW_VERSION)
            tools.append(Tool("metaflow", "Metaflow", python, "metaflow"))
        else:
            tools.append(Tool("shipyard", "shipyard", args.shipyard_python, "shipyard"))
    for tool in tools:
        try:
            versions[tool.name] = tool.version()
        except RuntimeError as exc:
            versions[tool.name] = "not installed"
            progress(f"{tool.name}: cannot read its version: {exc}")
        progress(f"{tool.display} {versions[tool.name]} from {tool.python}")
    ctx = Context(args, tools, Results(), run_dir)
    if "import" in args.only:
        case_import(ctx)
    if not args.no_warmup and {"a", "b", "c"} & set(args.only):
        warm_up(ctx)
    for case, run in (("a", case_a), ("b", case_b), ("c", case_c)):
        if case in args.only:
            run(ctx)
    rows = build_rows(ctx)
    info = machine(run_dir)
    body = section(ctx, rows, versions, info)
    print(body)
    if args.write:
        write_markdown_section(args.benchmarks, START, END, body, HEADER)
        progress(f"wrote the flows section of {args.benchmarks}")
    if args.json:
        raw = {
            "versions": versions,
            "machine": info,
            "imports": {f"{k}/{t}": asdict(v) for (k, t), v in ctx.results.imports.items()},
            "errors": {f"{c}/{t}": m for (c, t), m in ctx.results.errors.items()},
            "samples": {
                f"{c}/{t}": [
                    {**asdict(s.measured), "stdout": None, "stderr": None, "extra": s.extra}
                    for s in samples
                ]
                for (c, t), samples in ctx.results.samples.items()
            },
        }
        args.json.write_text(json.dumps(raw, indent=2))
    if ctx.results.errors:
        progress(f"kept {run_dir} for the logs of what failed")
    elif not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 1 if ctx.results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
