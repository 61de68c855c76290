"""Features (issue 22): what a serving log and a FeatureSet cost a service.

1. **Logging CPU** - five real worker processes (``python -m shipyard.serve.worker``) serve
   the same feature endpoint (bench/features/service.py): ``Plain`` computes the row with
   the FeatureSet, ``Logged`` also logs every request (``ServingLog(sample=1.0)``: facts,
   lookups, the feature vector - named once per segment, ``ServingLog(features=FEATURES)``
   - and the prediction; segments of 1 MB published as it goes),
   ``ByHand`` calls the same plain functions one by one; ``WithModel`` and
   ``WithModelLogged`` add what a ranker's endpoint really does per request, a scikit-learn
   model's ``predict_proba`` on the row (fitted at load). The client speaks the worker's
   framing directly on its socket (16 requests in flight), so what is measured is the
   worker alone: its CPU time over a round, every thread (the log's writer included), as
   the kernel counts it per thread (``/proc/<pid>/task/*/schedstat``: the nanosecond sum
   that rusage reports rounded to clock ticks; the tick-rounded /proc/<pid>/stat figure is
   kept beside it). A round gives each variant N requests (default 20,000) in 20 chunks,
   the variants interleaved chunk by chunk (so a burst of load on the shared machine falls
   on all of them), then a 0.6 s pause that lets the writers drain before the CPU is read.
   Five rounds; the median per variant. Goal: logging adds <= 5%.
2. **A row in-process** - ``FEATURES.row(facts, lookups)`` vs the same functions called by
   hand (``by_hand``), interleaved, median of 7 timings of 20,000 rows each; the pandas
   path Feast users complain about (a one-row DataFrame through ``FEATURES.frame``) beside
   it. Goal: row <= by hand + 10%.
3. **The log decomposed** - in-process, 100,000 rows logged or not, the CPU of the request
   thread (``time.thread_time``) and of the writer (the process's minus it).

    PYTHONPATH=src .venv/bin/python bench/features.py [--requests 20000] [--rounds 5] [--write]

``--write`` puts the results in BENCHMARKS.md between ``<!-- bench:features:start -->`` and
``<!-- bench:features:end -->`` (the first time, in place of the hand-written "Features"
section). The machine is shared: the script prints the load average before and after;
re-run on a quiet machine with the same command.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "features"
sys.path.insert(0, str(HERE))

from ranker_set import FEATURES, by_hand, facts_for, lookups_for  # noqa: E402

from shipyard.serve.protocol import Kind  # noqa: E402
from shipyard.serve.testing import FrameConnection, WorkerProcess  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:features:start -->", "<!-- bench:features:end -->"
#: the hand-written section --write replaces the first time (up to the next bench's markers)
OLD_HEADING = "## Features: what a FeatureSet row and a serving log cost a service"
VARIANTS = ("Plain", "Logged", "ByHand", "WithModel", "WithModelLogged")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process (all its threads), in clock ticks (rusage's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the process's main thread and of its other threads, to the
    nanosecond (each thread's sum_exec_runtime; the threads of a worker live as long as
    it does, so none is lost between two readings)."""
    main = other = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            ns = int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(task) == pid:
            main += ns
        else:
            other += ns
    return main / 1e9, other / 1e9


def drive(conn: FrameConnection, count: int, window: int = 16) -> None:
    """``count`` requests, ``window`` in flight; every answer must be a 200."""
    bodies = [json.dumps(_body(i)).encode() for i in range(256)]
    sent = received = 0
    while sent < min(window, count):
        conn.send_request("score", bodies[sent % 256])
        sent += 1
    while received < count:
        frame = conn.recv()
        if frame.kind is not Kind.RESPONSE or frame.code != 200:
            raise RuntimeError(
                f"the worker answered {frame.kind.name} {frame.code}: {frame.payload!r}"
            )
        received += 1
        if sent < count:
            conn.send_request("score", bodies[sent % 256])
            sent += 1


def _body(i: int) -> dict[str, Any]:
    facts = facts_for(i)
    return {k: facts[k] for k in ("profile_id", "title", "genres", "released")}


def logging_cpu(requests: int, rounds: int, home: Path) -> dict[str, Any]:
    env = {
        "SHIPYARD_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1] / "src"), str(HERE)]
        ),
    }
    workers = {
        v: WorkerProcess(HERE, f"service.py:{v}", f"bench-{v.lower()}", env=env, ready_timeout=300)
        for v in VARIANTS
    }
    per_request: dict[str, list[float]] = {v: [] for v in VARIANTS}
    main_thread: dict[str, list[float]] = {v: [] for v in VARIANTS}
    ticks: dict[str, list[float]] = {v: [] for v in VARIANTS}
    chunks = 20
    try:
        conns = {v: w.connect() for v, w in workers.items()}
        for conn in conns.values():  # warm up: imports, caches, the log's thread
            drive(conn, 2_000)
        time.sleep(1.0)
        for r in range(rounds):
            pids = {v: workers[v].process.pid for v in VARIANTS}
            before = {v: thread_cpu(pid) for v, pid in pids.items()}
            before_ticks = {v: cpu_seconds(pid) for v, pid in pids.items()}
            for c in range(chunks):
                k = (r * chunks + c) % len(VARIANTS)
                for variant in VARIANTS[k:] + VARIANTS[:k]:
                    drive(conns[variant], requests // chunks + (c < requests % chunks))
            time.sleep(0.6)  # the writer threads drain (their CPU is their worker's)
            for v, pid in pids.items():
                main, other = thread_cpu(pid)
                per_request[v].append((main + other - sum(before[v])) / requests)
                main_thread[v].append((main - before[v][0]) / requests)
                ticks[v].append((cpu_seconds(pid) - before_ticks[v]) / requests)
            print(
                f"  round {r + 1} (load {os.getloadavg()[0]:.1f}): "
                + ", ".join(f"{v} {per_request[v][-1] * 1e6:.2f} us" for v in VARIANTS),
                flush=True,
            )
    finally:
        for worker in workers.values():
            worker.close()
    logged_segments = list((home / "blobs" / "serving-logs" / "bench-logged").glob("*.zst"))
    median = {v: statistics.median(xs) for v, xs in per_request.items()}
    return {
        "per_request_us": {v: [x * 1e6 for x in xs] for v, xs in per_request.items()},
        "median_us": {v: m * 1e6 for v, m in median.items()},
        "main_thread_median_us": {v: statistics.median(xs) * 1e6 for v, xs in main_thread.items()},
        "ticks_median_us": {v: statistics.median(xs) * 1e6 for v, xs in ticks.items()},
        "logging_overhead": median["Logged"] / median["Plain"] - 1,
        "logging_overhead_with_model": median["WithModelLogged"] / median["WithModel"] - 1,
        "set_vs_hand_in_service": median["Plain"] / median["ByHand"] - 1,
        "segments_written": len(logged_segments),
        "bytes_written": sum(p.stat().st_size for p in logged_segments),
    }


def row_timing(rows: int = 2_000, reps: int = 61) -> dict[str, Any]:
    """Alternating chunks of ``rows`` rows, ``reps`` times each: on a shared machine the
    minimum chunk time is the cost least disturbed by other processes (the median is
    reported too)."""
    inputs = [(facts_for(i), lookups_for(f"p{i % 100}")) for i in range(rows)]
    row = FEATURES.row
    assert all(row(f, lk) == by_hand(f, lk) for f, lk in inputs)
    times: dict[str, list[float]] = {"row": [], "by_hand": []}
    for rep in range(reps):
        pair = (("row", row), ("by_hand", by_hand))
        for name, fn in pair if rep % 2 else pair[::-1]:
            start = time.perf_counter()
            for facts, lookups in inputs:
                fn(facts, lookups)
            times[name].append((time.perf_counter() - start) / rows)
    few = inputs[:200]
    start = time.perf_counter()
    for facts, _lookups in few:
        FEATURES.frame([facts], vectorized=False)
    pandas_path = (time.perf_counter() - start) / len(few)
    best = {k: min(v) for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in times.items()}
    return {
        "row_us": best["row"] * 1e6,
        "by_hand_us": best["by_hand"] * 1e6,
        "row_overhead": best["row"] / best["by_hand"] - 1,
        "row_median_us": median["row"] * 1e6,
        "by_hand_median_us": median["by_hand"] * 1e6,
        "row_overhead_median": median["row"] / median["by_hand"] - 1,
        "one_row_frame_us": pandas_path * 1e6,
    }


def log_decomposed(rows: int = 100_000, reps: int = 3) -> dict[str, Any]:
    """The log's CPU per record in-process, split by thread: the request thread's
    (``time.thread_time``: the call, the packing, the append) and the writer's (the
    process's CPU minus the request thread's: compressing, writing, publishing). Less
    disturbed by other processes than the workers' rounds: it counts this process only.
    The heap is frozen first (``gc.freeze()``), as a worker's is after ``load()``."""
    from shipyard.features import ServingLog

    def run(serving: ServingLog | None) -> tuple[float, float]:
        process, thread = time.process_time(), time.thread_time()
        for i in range(rows):
            facts = facts_for(i)
            lookups = lookups_for(facts["profile_id"])
            values = list(FEATURES.row(facts, lookups).values())
            if serving is not None:
                serving.log(facts=facts, lookups=lookups, features=values, prediction=1.0)
        if serving is not None:
            serving.flush()
        return (time.thread_time() - thread) / rows, (time.process_time() - process) / rows

    gc.freeze()  # as a worker does after load(): the collector walks only what is new
    with tempfile.TemporaryDirectory(prefix="bench-features-log-") as tmp:
        serving = ServingLog(service="bench", store_url=f"file://{tmp}", features=FEATURES)
        off: list[tuple[float, float]] = []
        on: list[tuple[float, float]] = []
        for _ in range(reps):
            off.append(run(None))
            on.append(run(serving))
        serving.close()
    request = statistics.median(b[0] - a[0] for a, b in zip(off, on, strict=True))
    writer = statistics.median((b[1] - b[0]) - (a[1] - a[0]) for a, b in zip(off, on, strict=True))
    base = statistics.median(a[1] for a in off)
    return {
        "row_and_facts_us": base * 1e6,
        "request_thread_us": request * 1e6,
        "writer_thread_us": writer * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = os.getloadavg()[0]
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"load average before: {os.getloadavg()}")
    print(
        f"1. logging CPU: {args.requests} requests x {args.rounds} rounds per variant", flush=True
    )
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        cpu = logging_cpu(args.requests, args.rounds, Path(tmp))
    m = cpu["median_us"]
    print(
        f"  median worker CPU per request: Plain {m['Plain']:.1f} us, Logged {m['Logged']:.1f} us "
        f"(+{cpu['logging_overhead'] * 100:.1f}%; goal <= +5%), ByHand {m['ByHand']:.1f} us "
        f"(set vs hand in the service {cpu['set_vs_hand_in_service'] * 100:+.1f}%)"
    )
    print(
        f"  with a scikit-learn model: WithModel {m['WithModel']:.1f} us, WithModelLogged "
        f"{m['WithModelLogged']:.1f} us (+{cpu['logging_overhead_with_model'] * 100:.1f}%)"
    )
    print(f"  log: {cpu['segments_written']} segments, {cpu['bytes_written']} bytes (zstd)")
    print("2. a row in-process", flush=True)
    rows = row_timing()
    print(
        f"  best of 61 chunks: FeatureSet.row {rows['row_us']:.2f} us, by hand "
        f"{rows['by_hand_us']:.2f} us ({rows['row_overhead'] * 100:+.1f}%; goal <= +10%); "
        f"medians {rows['row_median_us']:.2f} / {rows['by_hand_median_us']:.2f} us "
        f"({rows['row_overhead_median'] * 100:+.1f}%); the pandas path (a one-row DataFrame "
        f"through .frame) {rows['one_row_frame_us']:.0f} us"
    )
    print("3. the log's CPU per record in-process, by thread", flush=True)
    parts = log_decomposed()
    print(
        f"  building the facts and the row {parts['row_and_facts_us']:.2f} us; logging adds "
        f"{parts['request_thread_us']:.2f} us on the request thread and "
        f"{parts['writer_thread_us']:.2f} us on the writer thread"
    )
    print(f"load average after: {os.getloadavg()}")
    print("BENCH_JSON " + json.dumps({"logging": cpu, "row": rows, "log_parts": parts}))
    if args.write:
        words = sys.argv[1:] if argv is None else argv
        info = {
            "when": when,
            "command": " ".join(["PYTHONPATH=src .venv/bin/python bench/features.py", *words]),
            "load": f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
            "duration": f"{time.monotonic() - started:.0f} s",
        }
        write_benchmarks(section(cpu, rows, parts, info, args.requests, args.rounds))
        print(f"BENCHMARKS.md: the features section written ({START})")
    return 0


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("msgpack", "ormsgpack", "zstandard", "scikit-learn", "pandas", "duckdb"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def section(
    cpu: dict[str, Any],
    rows: dict[str, Any],
    parts: dict[str, Any],
    info: dict[str, str],
    requests: int,
    rounds: int,
) -> str:
    """The BENCHMARKS.md section."""
    m, main = cpu["median_us"], cpu["main_thread_median_us"]
    plain, logged = cpu["logging_overhead"], cpu["logging_overhead_with_model"]

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    lines = [
        "## Features: what a FeatureSet row and a serving log cost a service",
        "",
        f"- When: {info['when']}; command: `{info['command']}` ({requests:,} requests x "
        f"{rounds} rounds per variant; the run took {info['duration']})",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}; 1-minute load average {info['load']}",
        f"- Versions: {_versions()}",
        "- What runs: five worker processes (`python -m shipyard.serve.worker`) serve one "
        "feature endpoint (bench/features/service.py: eight ranker features over request "
        "facts and two lookups); the client speaks the worker's framing on its socket, 16 "
        "requests in flight, so only the worker is measured: its CPU time, every thread (the "
        "log's writer included), as the kernel counts it per thread (schedstat, ns; the "
        "tick-rounded rusage figure is in the JSON). Each round gives each variant the "
        "requests in 20 chunks interleaved with the others', then a 0.6 s pause lets the "
        "writers drain. `Plain`: the set's row and a Python linear model; `Logged`: the same, "
        "every request logged (facts, lookups, the eight features' vector - its names once "
        "per segment, `ServingLog(features=FEATURES)` - and the prediction; 1 MB segments, "
        "published, fsynced and renamed as it goes); `ByHand`: "
        "the functions called one by one; `WithModel` / `WithModelLogged`: a scikit-learn "
        "`LogisticRegression.predict_proba` on the row.",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        f"| logging at 100% adds <= 5% to the worker's CPU per request (median of {rounds}) "
        f"| minimal endpoint: {m['Plain']:.2f} -> {m['Logged']:.2f} us ({plain * 100:+.1f}%); "
        f"scikit-learn model: {m['WithModel']:.1f} -> {m['WithModelLogged']:.1f} us "
        f"({logged * 100:+.1f}%) | minimal: {met(plain <= 0.05)}; model: {met(logged <= 0.05)} |",
        f"| a row in a service costs <= the functions by hand + 10% | in-process, best of 61 "
        f"chunks: {rows['row_us']:.2f} vs {rows['by_hand_us']:.2f} us "
        f"({rows['row_overhead'] * 100:+.1f}%); in the worker: {m['Plain']:.2f} vs "
        f"{m['ByHand']:.2f} us ({cpu['set_vs_hand_in_service'] * 100:+.1f}%) "
        f"| {met(rows['row_overhead'] <= 0.10)} |",
        "",
        "Per round (us of worker CPU per request; the main thread's median beside the total):",
        "",
        "| variant | "
        + " | ".join(str(r + 1) for r in range(rounds))
        + " | median | main thread |",
        "|---|" + "---|" * (rounds + 2),
    ]
    for v in VARIANTS:
        values = " | ".join(f"{x:.2f}" for x in cpu["per_request_us"][v])
        lines.append(f"| {v} | {values} | {m[v]:.2f} | {main[v]:.2f} |")
    lines += [
        "",
        f"In-process (bench part 3, this process's threads only): building the facts and the "
        f"row {parts['row_and_facts_us']:.2f} us; logging adds "
        f"{parts['request_thread_us']:.2f} us on the request thread and "
        f"{parts['writer_thread_us']:.2f} us on the writer thread. The pandas path Feast's "
        f"users complain about, a one-row DataFrame through `FeatureSet.frame`, costs "
        f"{rows['one_row_frame_us']:,.0f} us per row, against {rows['row_us']:.2f} us for `row`.",
        "",
        f"Segments written by `Logged`: {cpu['segments_written']} "
        f"({cpu['bytes_written']:,} bytes, zstd).",
    ]
    return "\n".join(lines)


def write_benchmarks(text: str) -> None:
    from flows import HEADER
    from measure import write_section

    path = REPO / "BENCHMARKS.md"
    doc = path.read_text() if path.exists() else ""
    if START not in doc and OLD_HEADING in doc:  # the first time: in place of the old one
        i = doc.index(OLD_HEADING)
        j = doc.find("<!-- bench:", i)
        doc = doc[:i] + f"{START}\n{END}\n\n" + (doc[j:] if j != -1 else "")
        path.write_text(doc)
    write_section(path, START, END, text, HEADER)


if __name__ == "__main__":
    sys.exit(main())
