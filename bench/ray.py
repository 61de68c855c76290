"""Flows on Ray: bare Ray, shipyard's Ray executor, its local runtime and Metaflow, one run.

    .venv/bin/python bench/ray.py                 # everything (~10 min on 2 cores), table on stdout
    .venv/bin/python bench/ray.py --write         # ... and replace the ray section of BENCHMARKS.md
    .venv/bin/python bench/ray.py --quick         # small sizes, to iterate (~1 min)
    .venv/bin/python bench/ray.py --only tasks --sizes 1000 --tools ray,shipyard-ray

Ray is only ever started inside a loopback-only network namespace: the script re-executes
itself under ``unshare -n sh -c 'ip link set lo up && exec ...'`` (root, as on this machine)
and refuses to start Ray unless a connect to the cloud metadata address fails at once with
ENETUNREACH. Usage stats are off (``RAY_USAGE_STATS_ENABLED=0``).

The cluster: ``ray.cluster_utils.Cluster`` on 127.0.0.1, a head and a second node, 1 CPU
each (``--node-cpus``), an object store of ``--object-store-mb`` (1,024) each, dashboard off.
Every command it runs is a subprocess connecting to it by address.

Parts (``--only``):

- tasks: for each of ``--sizes`` (100,1000), the foreach of bench/flows/foreach.py (start ->
  N trivial tasks -> join -> end) run by shipyard on Ray (``--executor ray --ray-address``),
  by shipyard's local fork runtime, by Metaflow's local runtime (all ``--max-workers`` 2), and
  the foreach's function as N bare Ray tasks (bench/rayflows/bare.py), all at once and with
  at most ``--workers`` in flight (``ray-window``). Measured per command:
  wall from fork to exit; CPU of the whole machine (user + nice + system + irq + softirq of
  the first line of /proc/stat, before and after); CPU of ours (the command's tree, from
  ``os.wait4``, plus every process of the Ray cluster, from /proc/PID/stat).
- handoff: bench/flows/bigarray.py with a ``--handoff-mb`` (200) array, shipyard on Ray and
  locally, against the floor: the same array written to and read back from shipyard's local
  blob store in one process (``artifacts.save`` + ``load_record``, then a sum that reads every
  page).
- serve: the iris service of bench/serve.py on Ray Serve through shipyard's host, as a
  plain Ray Serve app through its own HTTP proxy, and on the host's own replica, with
  ``shipyard loadtest`` at 1 and ``--serve-connections`` connections (bench/ray_serving.py);
  its table is a section of its own in BENCHMARKS.md.
- rank: the movie ranker's ``Ranker.rows`` (examples/movie_ranker/model.py: scores against
  the whole catalogue, masks what was seen, top ``--rank-k``) on synthetic factors of
  ``--rank-items`` (10,000) titles x ``--rank-factors`` (64), in one process pinned to one
  CPU with one BLAS thread: home rows per second per core, the number docs/scale.md needs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# This file is bench/ray.py: with bench/ first on sys.path, ``import ray`` would import it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.append(str(BENCH))

from measure import machine, tree_cpu, tree_pids  # noqa: E402
from measure import write_section as write_markdown_section  # noqa: E402

START, END = "<!-- bench:ray:start -->", "<!-- bench:ray:end -->"
SERVE_START, SERVE_END = "<!-- bench:ray-serve:start -->", "<!-- bench:ray-serve:end -->"
HEADER = "# Benchmarks\n"
PARTS = ("tasks", "handoff", "rank", "serve")
TOOLS = ("ray", "ray-window", "shipyard-ray", "shipyard", "metaflow")
DISPLAY = {
    "ray": "bare Ray tasks",
    "ray-window": "bare Ray tasks, at most `--workers` in flight",
    "shipyard-ray": "shipyard `--executor ray`",
    "shipyard": "shipyard local (fork)",
    "metaflow": "Metaflow local",
}
GOAL_CPU_MS, GOAL_1000_WALL, GOAL_HANDOFF_X = 10.0, 10.0, 2.0
_T0 = time.perf_counter()
_TICKS = os.sysconf("SC_CLK_TCK")


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the namespace


def metadata_probe_errno() -> int | None:
    """The errno of a connect to 169.254.169.254:80 (None: it connected)."""
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("169.254.169.254", 80))
        except OSError as exc:
            return exc.errno
    return None


def ensure_namespace(argv: Sequence[str]) -> None:
    """Re-exec under ``unshare -n`` unless already inside; refuse if the probe gets out."""
    if os.environ.get("SHIPYARD_RAY_NETNS") != "1":
        env = {**os.environ, "SHIPYARD_RAY_NETNS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
        inner = 'ip link set lo up && exec "$0" "$@"'
        command = ["unshare", "-n", "sh", "-c", inner, sys.executable, __file__, *argv]
        try:
            os.execvpe("unshare", command, env)
        except OSError as exc:
            raise SystemExit(f"bench/ray.py: could not run {command[0]}: {exc}") from None
    probe = metadata_probe_errno()
    if probe != errno.ENETUNREACH:
        raise SystemExit(
            "bench/ray.py: refusing to start Ray: 169.254.169.254 is not unreachable here "
            f"(errno {probe}); run it without SHIPYARD_RAY_NETNS so it enters its own "
            "loopback-only namespace"
        )
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


# --------------------------------------------------------------------------- measuring


def machine_cpu() -> float:
    """CPU-seconds the whole machine spent busy so far (first line of /proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / _TICKS


@dataclass
class Measured:
    """One command: wall, and CPU three ways (see the module docstring)."""

    wall: float
    cpu_machine: float
    cpu_command: float
    cpu_cluster: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_ours(self) -> float:
        return self.cpu_command + self.cpu_cluster


class CaseFailed(Exception):
    pass


def run(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float, cluster_root: int
) -> Measured:
    """Run ``argv`` to its end, its output in ``cwd``/out.log and err.log."""
    before_pids = set(tree_pids(cluster_root)) - {os.getpid()}
    before_cpu = {pid: tree_cpu([pid]) for pid in before_pids}
    m0, t0 = machine_cpu(), time.perf_counter()
    with open(cwd / "out.log", "wb") as out, open(cwd / "err.log", "wb") as err:
        popen = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                popen.kill()
                os.wait4(popen.pid, 0)
                raise CaseFailed(f"timed out after {timeout:.0f} s; logs in {cwd}")
            time.sleep(0.01)
    wall, m1 = time.perf_counter() - t0, machine_cpu()
    popen.returncode = os.waitstatus_to_exitcode(status)
    after_pids = set(tree_pids(cluster_root)) - {os.getpid()}
    cluster = sum(tree_cpu([pid]) - before_cpu.get(pid, 0.0) for pid in after_pids)
    if popen.returncode != 0:
        tail = (cwd / "err.log").read_text(errors="replace")[-3000:]
        raise CaseFailed(f"exit {popen.returncode}; logs in {cwd}:\n{tail}")
    return Measured(wall, m1 - m0, usage.ru_utime + usage.ru_stime, max(cluster, 0.0))


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    address: str
    handle: object

    def shutdown(self) -> None:
        self.handle.shutdown()  # type: ignore[attr-defined]


def start_cluster(args: argparse.Namespace) -> Cluster:
    from ray.cluster_utils import Cluster as RayCluster

    common = {
        "num_cpus": args.node_cpus,
        "object_store_memory": args.object_store_mb * 2**20,
        "node_ip_address": "127.0.0.1",
    }
    progress(
        f"starting a two-node Ray cluster on 127.0.0.1 ({args.node_cpus} CPU, "
        f"{args.object_store_mb} MB object store each)"
    )
    cluster = RayCluster(
        initialize_head=True,
        head_node_args={**common, "resources": {"node_a": 1}, "include_dashboard": False},
    )
    cluster.add_node(**common, resources={"node_b": 1})
    cluster.wait_for_nodes()
    return Cluster(cluster.address, cluster)


def kill_leftovers() -> None:
    """Kill every process still below this one (Ray's), by pid."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=10)


# --------------------------------------------------------------------------- the runs


@dataclass
class Bench:
    args: argparse.Namespace
    cluster: Cluster | None
    workdir: Path
    results: dict[str, dict[str, list[Measured]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)
    rank: dict[str, float] = field(default_factory=dict)
    idle_cpu: float = 0.0  # CPU-seconds per second of the idle cluster
    load_note: str = ""
    background: float = 0.0  # cores the machine was busy with before this run started

    def case_dir(self, label: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.workdir))

    def env(self, case_dir: Path, tool: str, extra: dict[str, str]) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("METAFLOW_", "SHIPYARD_", "PYTHON", "BENCH_"))
        }
        env.update(extra)
        env["USERNAME"] = "bench"
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        if tool == "metaflow":
            env["METAFLOW_HOME"] = str(case_dir / "metaflow-config")
            env["METAFLOW_DATASTORE_SYSROOT_LOCAL"] = str(case_dir)
            env["METAFLOW_DEFAULT_METADATA"] = "local"
            env["METAFLOW_DEFAULT_DATASTORE"] = "local"
        else:
            env["SHIPYARD_HOME"] = str(case_dir / "shipyard-home")
            env["PYTHONPATH"] = str(REPO / "src")  # this checkout's shipyard
        return env

    def flow_argv(self, tool: str, flow: Path, n: int, variables: dict[str, str]) -> list[str]:
        argv = [sys.executable, str(flow), "run", "--max-workers", str(self.args.workers)]
        if self.args.profile and tool.startswith("shipyard"):  # the runtime, not its tasks
            out = self.args.profile / f"{tool}-{n}.prof"
            argv[1:1] = ["-m", "cProfile", "-o", str(out)]
        if tool == "shipyard-ray":
            assert self.cluster is not None
            argv += ["--executor", "ray", "--ray-address", self.cluster.address]
            # Ray's workers run with the cluster's environment, not this command's
            argv += ["--with", "environment:vars=" + json.dumps(variables)]
        if tool == "metaflow":
            argv += ["--max-num-splits", str(max(n, 100))]
        return argv

    def measure(self, key: str, tool: str, argv: list[str], case_dir: Path, env: dict) -> Measured:
        root = os.getpid()
        measured = run(argv, cwd=case_dir, env=env, timeout=self.args.timeout, cluster_root=root)
        self.results.setdefault(key, {}).setdefault(tool, []).append(measured)
        return measured


def copy_flow(source: Path, case_dir: Path, tool: str) -> Path:
    text = source.read_text()
    if tool != "metaflow":
        text = text.replace("from metaflow import ", "from shipyard import ")
    target = case_dir / source.name
    target.write_text(text)
    return target


def part_tasks(bench: Bench) -> None:
    for n in bench.args.sizes:
        key = f"tasks:{n}"
        for rep in range(1, bench.args.reps + 1):
            for tool in bench.args.tools:
                if (key, tool) in bench.errors or (
                    tool == "metaflow" and n > bench.args.metaflow_max
                ):
                    continue
                case_dir = bench.case_dir(f"{n}-{tool}-{rep}")
                variables = {"BENCH_FOREACH_N": str(n)}
                env = bench.env(case_dir, tool, variables)
                if tool in ("ray", "ray-window"):
                    assert bench.cluster is not None
                    argv = [
                        sys.executable,
                        str(BENCH / "rayflows" / "bare.py"),
                        bench.cluster.address,
                        str(n),
                    ]
                    if tool == "ray-window":
                        argv.append(str(bench.args.workers))
                else:
                    flow = copy_flow(BENCH / "flows" / "foreach.py", case_dir, tool)
                    argv = bench.flow_argv(tool, flow, n, variables)
                progress(f"foreach {n}, {tool}, rep {rep}: {shlex.join(argv[1:])}")
                try:
                    m = bench.measure(key, tool, argv, case_dir, env)
                except CaseFailed as exc:
                    bench.errors[key + "|" + tool] = str(exc)
                    progress(f"  FAILED: {exc}")
                    continue
                if tool in ("ray", "ray-window"):
                    m.extra = json.loads((case_dir / "out.log").read_text().splitlines()[-1])
                tasks = n if tool.startswith("ray") else n + 3
                progress(
                    f"  wall {m.wall:.2f} s; CPU machine {m.cpu_machine:.2f} s "
                    f"({1000 * m.cpu_machine / tasks:.1f} ms/task), ours {m.cpu_ours:.2f} s "
                    f"(command {m.cpu_command:.2f}, cluster {m.cpu_cluster:.2f})"
                )
                shutil.rmtree(case_dir, ignore_errors=True)


FLOOR = """\
import json, sys, time
import numpy as np
from shipyard.flow.artifacts import load_record, save
from shipyard.store.blobs import open_blob_store

n, root = int(sys.argv[1]), sys.argv[2]
store = open_blob_store("file://" + root)
array = np.random.default_rng(0).random(n)
t0 = time.perf_counter()
record = save(store, "array", array)
t1 = time.perf_counter()
del array
t2 = time.perf_counter()
loaded = load_record(store, record)
total = float(loaded.sum())
t3 = time.perf_counter()
float(loaded.sum())
t4 = time.perf_counter()
print(json.dumps({"write": t1 - t0, "read": (t3 - t2) - (t4 - t3)}))
"""


def part_handoff(bench: Bench) -> None:
    n = bench.args.handoff_mb * 10**6 // 8
    for rep in range(1, bench.args.reps_handoff + 1):
        case_dir = bench.case_dir(f"floor-{rep}")
        (case_dir / "floor.py").write_text(FLOOR)
        env = bench.env(case_dir, "shipyard", {})
        argv = [sys.executable, "floor.py", str(n), str(case_dir / "blobs")]
        progress(f"hand-off floor: shipyard's local store, {bench.args.handoff_mb} MB, rep {rep}")
        try:
            m = bench.measure("handoff", "floor", argv, case_dir, env)
        except CaseFailed as exc:
            bench.errors["handoff|floor"] = str(exc)
            progress(f"  FAILED: {exc}")
            return
        m.extra = json.loads((case_dir / "out.log").read_text().splitlines()[-1])
        progress(f"  write {m.extra['write']:.2f} s, read {m.extra['read']:.2f} s")
        shutil.rmtree(case_dir, ignore_errors=True)
        for tool in ("shipyard-ray", "shipyard"):
            if tool not in bench.args.tools:
                continue
            case_dir = bench.case_dir(f"handoff-{tool}-{rep}")
            flow = copy_flow(BENCH / "flows" / "bigarray.py", case_dir, tool)
            times = case_dir / "times.txt"
            variables = {"BENCH_ARRAY_N": str(n), "BENCH_TIMES_FILE": str(times)}
            env = bench.env(case_dir, tool, variables)
            argv = bench.flow_argv(tool, flow, 1, variables)
            progress(f"hand-off, {tool}, rep {rep}")
            try:
                m = bench.measure("handoff", tool, argv, case_dir, env)
            except CaseFailed as exc:
                bench.errors["handoff|" + tool] = str(exc)
                progress(f"  FAILED: {exc}")
                continue
            stamps = dict(
                (label, float(value))
                for label, value in (line.split() for line in times.read_text().splitlines())
            )
            m.extra = {"handoff": stamps["loaded"] - stamps["saved"] - stamps["sum_seconds"]}
            progress(f"  wall {m.wall:.2f} s, hand-off {m.extra['handoff']:.2f} s")
            shutil.rmtree(case_dir, ignore_errors=True)


RANK = """\
import json, sys, time
import numpy as np
import scipy.sparse as sp
sys.path.insert(0, sys.argv[1])
from model import ImplicitALS, Ranker

users, items, factors, k, seen_per_user, seconds = (int(x) for x in sys.argv[2:8])
rng = np.random.default_rng(0)
als = ImplicitALS(factors=factors)
als.user_factors = rng.standard_normal((users, factors)).astype(np.float32)
als.item_factors = rng.standard_normal((items, factors)).astype(np.float32)
cols = rng.integers(0, items, users * seen_per_user)
rows = np.repeat(np.arange(users), seen_per_user)
seen = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(users, items))
ranker = Ranker.build(als, np.array([f"p{i:08d}" for i in range(users)]),
                      np.arange(items), None, seen)
batch = 1024
ranker.rows(np.arange(batch), k)  # warm
done, t0, c0 = 0, time.perf_counter(), time.process_time()
while time.process_time() - c0 < seconds:
    start = (done % users)
    idx = np.arange(start, min(start + batch, users))
    rows_out = ranker.rows(idx, k)
    done += len(rows_out)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"rows": done, "seconds": wall, "cpu_seconds": cpu,
                  "rows_per_s": done / wall, "rows_per_cpu_s": done / cpu}))
"""


def part_rank(bench: Bench) -> None:
    a = bench.args
    case_dir = bench.case_dir("rank")
    (case_dir / "rank.py").write_text(RANK)
    env = bench.env(case_dir, "shipyard", {})
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    cpu = str(max(os.sched_getaffinity(0)))
    argv = [
        "taskset",
        "-c",
        cpu,
        sys.executable,
        "rank.py",
        str(REPO / "examples" / "movie_ranker"),
    ]
    argv += [
        str(x) for x in (a.rank_users, a.rank_items, a.rank_factors, a.rank_k, 20, a.rank_seconds)
    ]
    progress(f"rank: {a.rank_items} titles x {a.rank_factors} factors, top {a.rank_k}, one core")
    try:
        m = bench.measure("rank", "shipyard", argv, case_dir, env)
    except CaseFailed as exc:
        bench.errors["rank|shipyard"] = str(exc)
        progress(f"  FAILED: {exc}")
        return
    bench.rank = json.loads((case_dir / "out.log").read_text().splitlines()[-1])
    bench.rank["cpu_per_wall"] = m.cpu_command / m.wall
    r = bench.rank
    progress(
        f"  {r['rows_per_cpu_s']:,.0f} rows per CPU-second ({r['rows_per_s']:,.0f} per second)"
    )
    shutil.rmtree(case_dir, ignore_errors=True)


# --------------------------------------------------------------------------- report


def med(values: list[float]) -> float:
    return statistics.median(values)


def fmt_s(value: float) -> str:
    return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"


def fmt_ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def report(bench: Bench, command: str, versions: dict[str, str]) -> str:
    a = bench.args
    info = machine(_workroot())
    load = os.getloadavg()
    lines = [
        "## Flows on Ray: bare Ray, shipyard on Ray, shipyard locally and Metaflow",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `{command}` (from the "
        "repository root; the script re-executes itself inside a loopback-only network "
        "namespace, `unshare -n`).",
        "",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, Linux "
        f"{info['kernel']}, Python {info['python']}; disk: {info['disk']}. Load average at the "
        f"end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({bench.load_note}; before the run "
        f"started, {bench.background:.2f} of the {info['nproc']} CPUs were busy with other work).",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        f"- Cluster: `ray.cluster_utils.Cluster` on 127.0.0.1, head + 1 node, {a.node_cpus} CPU "
        f"and a {a.object_store_mb:,} MB object store each, dashboard off; idle, its processes "
        f"use {bench.idle_cpu * 1000:.0f} ms of CPU per second. Flows: `--max-workers "
        f"{a.workers}` for every tool; Metaflow with `--max-num-splits` ≥ N. Medians of "
        f"{a.reps} run(s).",
        "",
    ]
    rows = [
        "| foreach | tool | wall | tasks | wall / task | CPU / task (machine, /proc/stat) | "
        "CPU / task (ours: command + cluster) | of which the command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in a.sizes:
        for tool in a.tools:
            ms = bench.results.get(f"tasks:{n}", {}).get(tool)
            if not ms:
                why = bench.errors.get(f"tasks:{n}|{tool}")
                if why or (tool != "metaflow" or n <= a.metaflow_max):
                    rows.append(f"| {n:,} | {DISPLAY[tool]} | failed | | | | | |")
                continue
            tasks = n if tool.startswith("ray") else n + 3
            wall = med([m.wall for m in ms])
            rows.append(
                f"| {n:,} | {DISPLAY[tool]} | {fmt_s(wall)} | {tasks:,} | "
                f"{fmt_ms(1000 * wall / tasks)} | "
                f"{fmt_ms(1000 * med([m.cpu_machine for m in ms]) / tasks)} | "
                f"{fmt_ms(1000 * med([m.cpu_ours for m in ms]) / tasks)} | "
                f"{fmt_ms(1000 * med([m.cpu_command for m in ms]) / tasks)} |"
            )
    lines += rows + [""]
    goals = ["| goal (issue 16) | measured | met |", "|---|---|---|"]
    big = max(a.sizes)
    ray_ms = bench.results.get(f"tasks:{big}", {}).get("shipyard-ray")
    if ray_ms:
        per_task = 1000 * med([m.cpu_machine for m in ray_ms]) / (big + 3)
        ours = 1000 * med([m.cpu_ours for m in ray_ms]) / (big + 3)
        goals.append(
            f"| ≤ {GOAL_CPU_MS:.0f} ms CPU per task on Ray (machine, foreach {big:,}) | "
            f"{fmt_ms(per_task)} (ours: {fmt_ms(ours)}) | "
            f"{'yes' if per_task <= GOAL_CPU_MS else '**no**'}"
            + (
                f" (ours: {'yes' if ours <= GOAL_CPU_MS else 'no'})"
                if per_task > GOAL_CPU_MS
                else ""
            )
            + " |"
        )
        wall = med([m.wall for m in ray_ms])
        if big >= 1000:
            goals.append(
                f"| 1,000 trivial tasks ≤ {GOAL_1000_WALL:.0f} s (on Ray) | {fmt_s(wall)} | "
                f"{'yes' if wall <= GOAL_1000_WALL else '**no**'} |"
            )
    hand = bench.results.get("handoff", {})
    if hand.get("floor"):
        floor = med([m.extra["write"] + m.extra["read"] for m in hand["floor"]])
        for tool in ("shipyard-ray", "shipyard"):
            if hand.get(tool):
                h = med([m.extra["handoff"] for m in hand[tool]])
                ok = h <= GOAL_HANDOFF_X * floor
                goal = f"≤ {GOAL_HANDOFF_X:.0f}x the local store's write + read"
                goals.append(
                    f"| {a.handoff_mb} MB hand-off, {DISPLAY[tool]}, {goal} | "
                    f"{fmt_s(h)} vs {fmt_s(floor)}: {h / floor:.1f}x | "
                    + (("yes" if ok else "**no**") if tool == "shipyard-ray" else "-")
                    + " |"
                )
    lines += goals + [""]
    if hand:
        lines.append(
            f"{a.handoff_mb} MB hand-off (bench/flows/bigarray.py, a float64 array): from the end "
            "of the saving step's code to the next step having read every page, minus an "
            "in-memory sum. On Ray the artifact goes through the run's blob store (a `file://` "
            "store on this disk, which both nodes share), not Ray's object store: the task "
            "writes it before it reports success, the next task reads it."
        )
        if hand.get("floor"):
            f = hand["floor"]
            lines.append(
                f"Floor: shipyard's local store in one process, `artifacts.save` "
                f"{fmt_s(med([m.extra['write'] for m in f]))} + `load_record` and a sum "
                f"{fmt_s(med([m.extra['read'] for m in f]))}."
            )
        lines.append("")
    if bench.rank:
        r = bench.rank
        lines += [
            "Rank rate (for docs/scale.md): `Ranker.rows` of examples/movie_ranker on "
            f"{a.rank_items:,} titles x {a.rank_factors} factors, top {a.rank_k}, 20 seen "
            f"titles masked per profile, batches of 1,024, one process pinned to one CPU with "
            f"one BLAS thread, {r['cpu_seconds']:.0f} CPU-seconds of ranking in "
            f"{r['seconds']:.0f} s: the rate per core is rows over the process's own CPU time "
            "(`time.process_time`), so that others' load on the shared CPU does not count; "
            "rows over wall time beside it.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| rank rate per core | {r['rows_per_cpu_s']:,.0f} home rows / s |",
            f"| rank rate over wall time, one pinned process | {r['rows_per_s']:,.0f} "
            "home rows / s |",
            "",
        ]
    lines += [
        "How to read it:",
        "",
        "- wall: from the fork of the command to its exit (so it includes starting Python and, "
        "for Ray, connecting to the cluster). Tasks: N for bare Ray; N + 3 for the flows "
        "(start, N foreach tasks, join, end).",
        "- CPU (machine): user + nice + system + irq + softirq of the first line of "
        "/proc/stat over the command, every process of the machine; it includes other load "
        "on a shared machine and the cluster's idle CPU (above). CPU (ours): the command's "
        "process tree (`os.wait4`) plus the Ray cluster's processes (/proc/PID/stat, workers "
        "included).",
    ]
    if bench.errors:
        lines += ["", "Failures:", ""]
        lines += [f"- {k}: {v.splitlines()[0]}" for k, v in bench.errors.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes to iterate")
    p.add_argument("--write", action="store_true", help="update BENCHMARKS.md's ray section")
    p.add_argument("--only", default=",".join(PARTS), help=f"parts: {','.join(PARTS)}")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"of {','.join(TOOLS)}")
    p.add_argument("--sizes", default="100,1000", help="foreach sizes")
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--reps-handoff", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="--max-workers of every flow")
    p.add_argument("--node-cpus", type=int, default=1)
    p.add_argument("--object-store-mb", type=int, default=1024)
    p.add_argument("--handoff-mb", type=int, default=200)
    p.add_argument("--metaflow-max", type=int, default=1000, help="largest foreach for Metaflow")
    p.add_argument("--rank-users", type=int, default=20_000)
    p.add_argument("--rank-items", type=int, default=10_000)
    p.add_argument("--rank-factors", type=int, default=64)
    p.add_argument("--rank-k", type=int, default=20)
    p.add_argument("--rank-seconds", type=int, default=10, help="CPU-seconds of ranking")
    p.add_argument("--serve-connections", type=int, default=32)
    p.add_argument("--serve-duration", type=float, default=10.0, help="seconds per load test")
    p.add_argument(
        "--serve-targets",
        default="shipyard-ray,ray-serve,shipyard-local",
        help="of shipyard-ray,ray-serve,shipyard-local",
    )
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--json", type=Path, help="write every raw measurement here")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--profile", type=Path, help="cProfile shipyard's runtime into this directory")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.handoff_mb, args.rank_seconds = "20,100", 20, 2
    args.sizes = [int(x) for x in str(args.sizes).split(",")]
    args.only = [x for x in args.only.split(",") if x]
    args.tools = [x for x in args.tools.split(",") if x]
    args.serve_targets = [x for x in args.serve_targets.split(",") if x]
    from ray_serving import TARGETS

    for name, allowed in (("--only", PARTS), ("--tools", TOOLS), ("--serve-targets", TARGETS)):
        bad = set(getattr(args, name[2:].replace("-", "_"))) - set(allowed)
        if bad:
            p.error(f"{name}: unknown {sorted(bad)}; choose from {','.join(allowed)}")
    return args


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("ray", "shipyard", "metaflow", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        out["shipyard"] += f" (git {commit}{' + uncommitted changes' if dirty else ''})"
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def main(argv: Sequence[str]) -> int:
    args = parse(argv)  # a usage error before the namespace
    ensure_namespace(argv)
    command = "python bench/ray.py" + ("" if not argv else " " + shlex.join(argv))
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="ray-", dir=_workroot()))
    needs_ray = (
        "tasks" in args.only
        or "serve" in args.only
        or ("handoff" in args.only and "shipyard-ray" in args.tools)
    )
    serving: dict = {}
    bench = Bench(args, None, workdir)
    bench.load_note = f"{load_before[0]:.2f} at the start; the machine is shared"
    m0, t0 = machine_cpu(), time.perf_counter()
    time.sleep(3)
    bench.background = (machine_cpu() - m0) / (time.perf_counter() - t0)
    progress(f"the machine's CPU before anything starts: {bench.background:.2f} cores busy")
    try:
        if needs_ray:
            bench.cluster = start_cluster(args)
            time.sleep(2)
            c0, t0 = tree_cpu(tree_pids(os.getpid())), time.perf_counter()
            time.sleep(3)
            bench.idle_cpu = (tree_cpu(tree_pids(os.getpid())) - c0) / (time.perf_counter() - t0)
            progress(f"cluster up at {bench.cluster.address}; idle CPU {bench.idle_cpu:.3f} s/s")
        if "tasks" in args.only:
            part_tasks(bench)
        if "handoff" in args.only:
            part_handoff(bench)
        if "rank" in args.only:
            part_rank(bench)
        if "serve" in args.only:
            from ray_serving import part_serve

            assert bench.cluster is not None
            serving = part_serve(bench.cluster.address, args, workdir)
    finally:
        if bench.cluster is not None:
            try:
                bench.cluster.shutdown()
            finally:
                kill_leftovers()
        if not args.keep and not bench.errors:
            shutil.rmtree(workdir, ignore_errors=True)
    flows = [part for part in args.only if part != "serve"]
    text = report(bench, command, versions()) if flows else ""
    print(text)
    if "serve" in args.only:
        from ray_serving import serve_report

        info = machine(_workroot())
        heading = (
            f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {info['nproc']} CPUs "
            f"({info['cpu']}), {info['ram']} RAM; the machine is shared (load average "
            f"{os.getloadavg()[0]:.2f} at the end). Versions: "
            + ", ".join(f"{k} {v}" for k, v in versions().items())
            + "."
        )
        serve_text = serve_report(serving, args, heading, command)
        print(serve_text)
        if args.write:
            write_markdown_section(
                REPO / "BENCHMARKS.md", SERVE_START, SERVE_END, serve_text, HEADER
            )
    if args.json:
        raw = {
            key: {tool: [asdict(m) for m in ms] for tool, ms in tools.items()}
            for key, tools in bench.results.items()
        }
        args.json.write_text(
            json.dumps({"results": raw, "rank": bench.rank, "errors": bench.errors}, indent=1)
        )
    if args.write and flows:
        write_markdown_section(REPO / "BENCHMARKS.md", START, END, text, HEADER)
        progress("BENCHMARKS.md updated")
    return 1 if bench.errors else 0


def _workroot() -> Path:
    root = BENCH / ".work"
    root.mkdir(exist_ok=True)
    return root


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
