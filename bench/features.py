"""Features (issue 22): what a serving log and a FeatureSet cost a service.

1. **Logging CPU** - real worker processes (``python -m shipyard.serve.worker``), each
   serving a variant pair as endpoints of one process (bench/features/service.py,
   bench/features/ranker.py), so logging on and off are compared within one process, on
   the same CPU:
   - ``Minimal``: a feature endpoint that does the least one can - the FeatureSet's row of
     eight ranker features over request facts and two lookups, and a Python linear model -
     ``plain``, ``logged`` (every request: facts, lookups, the feature vector - its names
     once per segment - and the prediction; 1 MB segments published as it goes) and
     ``by_hand`` (the plain functions called one by one);
   - ``WithModel``: the row and a scikit-learn ``LogisticRegression.predict_proba``;
   - ``Ranker``: the movie ranker's own ``score_title`` (examples/movie_ranker/service.py:
     as-of aggregates, ``FEATURES.row``, the scorer pipeline, the serving log) beside the
     same work without the log, on MovieLens requests.
   The workers are pinned to one CPU and this client to the other (``pin``: otherwise a
   worker that happens to share the client's core spends 30-50% more CPU per request). The
   client speaks the worker's framing on its socket (16 requests in flight), in chunks of
   one endpoint, each bracketed by two readings of the worker's main thread CPU once it
   sleeps (``/proc/<pid>/task/<pid>/schedstat``, ns: the thread that serves every request);
   the CPU of the worker's other threads over a round - the log's writer - is all added to
   the logged variant. A round gives each endpoint N requests (default 20,000) in 20 chunks
   interleaved with its pair's, then a 0.6 s pause lets the writer drain. Five rounds; the
   median per variant. Goal: logging adds <= 5%.
2. **A row in-process** - ``FEATURES.row(facts, lookups)`` vs the same functions called by
   hand (``by_hand``), interleaved, best and median of 61 timings of 2,000 rows each; the
   pandas path Feast users complain about (a one-row DataFrame through ``FEATURES.frame``)
   beside it. Goal: row <= by hand + 10%.
3. **The log decomposed** - in-process, 100,000 rows logged or not, the CPU of the request
   thread (``time.thread_time``) and of the writer (the process's minus it).

    PYTHONPATH=src .venv/bin/python bench/features.py [--requests 20000] [--rounds 5] [--write]
    PYTHONPATH=src .venv/bin/python bench/features.py --only-logging     # part 1 alone

``--write`` puts the results in BENCHMARKS.md between ``<!-- bench:features:start -->`` and
``<!-- bench:features:end -->``. The machine is shared: the script prints the load average
before and after; re-run on a quiet machine with the same command.
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

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:features:start -->", "<!-- bench:features:end -->"
#: each worker (a class of bench/features/) and its variants: name -> endpoint; the logged
#: variant of each is the one whose name ends in "Logged"
PAIRS: dict[str, dict[str, str]] = {
    "service.py:Minimal": {"Plain": "plain", "Logged": "logged", "ByHand": "by_hand"},
    "service.py:WithModel": {"WithModel": "plain", "WithModelLogged": "logged"},
    "ranker.py:Ranker": {"Ranker": "score_title_unlogged", "RankerLogged": "score_title"},
}
VARIANTS = tuple(v for group in PAIRS.values() for v in group)


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


def idle_thread_cpu(pid: int) -> float:
    """The CPU seconds of the worker's main thread once it sleeps: a running thread's
    ``schedstat`` is brought up to date only at a scheduler tick or when it stops running,
    so a reading taken the moment the last answer arrives can miss up to a tick (4 ms) of
    its work; waiting for it to block (state ``S``: waiting for the next request) makes
    the reading exact."""
    stat = Path(f"/proc/{pid}/task/{pid}/stat")
    for _ in range(2_000):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "S":
            break
        time.sleep(0.0001)
    return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[0]) / 1e9


def pin(pids: list[int]) -> str:
    """The workers' threads on one CPU, this client on another: where the kernel puts them
    otherwise changes from process to process, and a worker that shares its core with the
    client spends 30-50% more CPU per request (its caches are the client's too) - measured
    on this 2-core machine, the same worker ~16.5 us/request beside the client's core and
    ~22-25 us on it. Threads a worker starts later (the log's writer) inherit its CPU.
    What was done, in words."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(task), {cpus[0]})
    os.sched_setaffinity(0, {cpus[-1]})
    return f"workers pinned to CPU {cpus[0]}, the client to CPU {cpus[-1]}"


def drive(
    conn: FrameConnection, count: int, endpoint: str, bodies: list[bytes], window: int = 16
) -> None:
    """``count`` requests to ``endpoint``, ``window`` in flight; every answer must be a 200."""
    sent = received = 0
    while sent < min(window, count):
        conn.send_request(endpoint, bodies[sent % len(bodies)])
        sent += 1
    while received < count:
        frame = conn.recv()
        if frame.kind is not Kind.RESPONSE or frame.code != 200:
            raise RuntimeError(
                f"the worker answered {frame.kind.name} {frame.code}: {frame.payload!r}"
            )
        received += 1
        if sent < count:
            conn.send_request(endpoint, bodies[sent % len(bodies)])
            sent += 1


def _bodies(entry: str) -> list[bytes]:
    if entry.startswith("ranker.py"):
        from ranker import bodies

        found = bodies()
    else:
        keys = ("profile_id", "title", "genres", "released")
        found = [{k: facts_for(i)[k] for k in keys} for i in range(256)]
    return [json.dumps(body).encode() for body in found]


def logging_cpu(requests: int, rounds: int, home: Path) -> dict[str, Any]:
    """Each variant's worker CPU per request (see the module doc): its endpoint's chunks
    bracketed by readings of the worker's main thread, the other threads' CPU (the log's
    writer: anything else a worker's threads did would count against logging, never for
    it) added to the logged variant's; chunks of a pair alternate, their order rotated."""
    path = os.pathsep.join([str(REPO / "src"), str(HERE)])
    env = {"SHIPYARD_HOME": str(home), "PYTHONPATH": path}
    workers = {
        entry: WorkerProcess(
            HERE, entry, f"bench-{entry.split(':')[1].lower()}", env=env, ready_timeout=300
        )
        for entry in PAIRS
    }
    per_request: dict[str, list[float]] = {v: [] for v in VARIANTS}
    chunks = 20
    #: per variant, per round: the main thread's CPU per request of each chunk (us), the
    #: writer's per request over the round (us) - for the chunk-paired overheads
    chunk_us: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    writer_us: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        conns = {entry: w.connect() for entry, w in workers.items()}
        pinned = pin([w.process.pid for w in workers.values()])
        bodies = {entry: _bodies(entry) for entry in PAIRS}
        for entry, conn in conns.items():  # warm up each endpoint
            for endpoint in PAIRS[entry].values():
                drive(conn, 2_000, endpoint, bodies[entry])
        time.sleep(1.0)
        for r in range(rounds):
            spent = dict.fromkeys(VARIANTS, 0.0)
            for v in VARIANTS:
                chunk_us[v].append([])
            for entry, group in PAIRS.items():
                pid = workers[entry].process.pid
                names = list(group)
                start_other = thread_cpu(pid)[1]
                for c in range(chunks):
                    k = (r * chunks + c) % len(names)
                    for variant in names[k:] + names[:k]:
                        before = idle_thread_cpu(pid)
                        count = requests // chunks + (c < requests % chunks)
                        drive(conns[entry], count, group[variant], bodies[entry])
                        used = idle_thread_cpu(pid) - before
                        spent[variant] += used
                        chunk_us[variant][-1].append(used / count * 1e6)
                time.sleep(0.6)  # the writer drains
                logged = next(v for v in names if v.endswith("Logged"))
                writer = thread_cpu(pid)[1] - start_other
                spent[logged] += writer
                for v in names:
                    writer_us[v].append(writer / requests * 1e6 if v == logged else 0.0)
            for v in VARIANTS:
                per_request[v].append(spent[v] / requests)
            print(
                f"  round {r + 1} (load {os.getloadavg()[0]:.1f}): "
                + ", ".join(f"{v} {per_request[v][-1] * 1e6:.2f} us" for v in VARIANTS),
                flush=True,
            )
    finally:
        for worker in workers.values():
            worker.close()
    segments = list((home / "blobs" / "serving-logs").glob("*/*.zst"))
    median = {v: statistics.median(xs) for v, xs in per_request.items()}

    def overhead(plain: str, logged: str) -> float:
        return median[logged] / median[plain] - 1

    def paired(plain: str, logged: str) -> float:
        """The median over chunk pairs (the same round and chunk index: close in time) of
        logged / plain - 1, each logged chunk carrying its round's writer CPU per request."""
        ratios = [
            (b + writer_us[logged][r]) / a - 1
            for r in range(rounds)
            for a, b in zip(chunk_us[plain][r], chunk_us[logged][r], strict=True)
        ]
        return statistics.median(ratios)

    return {
        "pinned": pinned,
        "per_request_us": {v: [x * 1e6 for x in xs] for v, xs in per_request.items()},
        "median_us": {v: m * 1e6 for v, m in median.items()},
        "logging_overhead": overhead("Plain", "Logged"),
        "logging_overhead_with_model": overhead("WithModel", "WithModelLogged"),
        "logging_overhead_ranker": overhead("Ranker", "RankerLogged"),
        "set_vs_hand_in_service": overhead("ByHand", "Plain"),
        "paired": {
            "logging": paired("Plain", "Logged"),
            "logging_with_model": paired("WithModel", "WithModelLogged"),
            "logging_ranker": paired("Ranker", "RankerLogged"),
            "set_vs_hand_in_service": paired("ByHand", "Plain"),
        },
        "writer_us": {v: statistics.median(xs) for v, xs in writer_us.items()},
        "segments_written": len(segments),
        "bytes_written": sum(p.stat().st_size for p in segments),
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
    parser.add_argument("--only-logging", action="store_true", help="part 1 only (no --write)")
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
    print(f"  {cpu['pinned']}")
    print(
        f"  median worker CPU per request: Plain {m['Plain']:.1f} us, Logged {m['Logged']:.1f} us "
        f"(+{cpu['logging_overhead'] * 100:.1f}%; goal <= +5%), ByHand {m['ByHand']:.1f} us "
        f"(set vs hand in the service {cpu['set_vs_hand_in_service'] * 100:+.1f}%)"
    )
    print(
        f"  with a scikit-learn model: WithModel {m['WithModel']:.1f} us, WithModelLogged "
        f"{m['WithModelLogged']:.1f} us (+{cpu['logging_overhead_with_model'] * 100:.1f}%)"
    )
    print(
        f"  the movie ranker's score_title: without the log {m['Ranker']:.1f} us, logged "
        f"{m['RankerLogged']:.1f} us (+{cpu['logging_overhead_ranker'] * 100:.1f}%)"
    )
    p = cpu["paired"]
    print(
        f"  chunk-paired medians: logging {p['logging'] * 100:+.1f}% (minimal), "
        f"{p['logging_with_model'] * 100:+.1f}% (model), {p['logging_ranker'] * 100:+.1f}% "
        f"(ranker); the row vs by hand {p['set_vs_hand_in_service'] * 100:+.1f}%; the writer "
        + ", ".join(f"{v} {x:.2f} us" for v, x in cpu["writer_us"].items() if x)
    )
    print(f"  log: {cpu['segments_written']} segments, {cpu['bytes_written']} bytes (zstd)")
    if args.only_logging:
        return 0
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
    m, p = cpu["median_us"], cpu["paired"]

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    def pair(plain: str, logged: str, key: str, paired_key: str) -> str:
        return (
            f"{m[plain]:.1f} -> {m[logged]:.1f} us: {cpu[key] * 100:+.1f}% "
            f"(chunk-paired {p[paired_key] * 100:+.1f}%)"
        )

    ranker_ok = max(cpu["logging_overhead_ranker"], p["logging_ranker"]) <= 0.05
    model_ok = max(cpu["logging_overhead_with_model"], p["logging_with_model"]) <= 0.05
    minimal_ok = max(cpu["logging_overhead"], p["logging"]) <= 0.05
    lines = [
        "## Features: what a FeatureSet row and a serving log cost a service",
        "",
        f"- When: {info['when']}; command: `{info['command']}` ({requests:,} requests x "
        f"{rounds} rounds per variant; the run took {info['duration']})",
        f"- Machine: {os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, "
        f"Python {platform.python_version()}; 1-minute load average {info['load']}; "
        f"{cpu['pinned']}",
        f"- Versions: {_versions()}",
        "- What runs: three worker processes (`python -m shipyard.serve.worker`), each serving "
        "a variant pair as endpoints of one process, so that logging on and off are compared "
        "within one process (between two processes, the CPU the kernel picks for each "
        "alone moved the same endpoint's CPU by 30% and more; see the bench's `pin`): "
        "`Minimal` (bench/features/service.py: the FeatureSet's row of eight ranker "
        "features over request facts and two lookups, and a Python linear model - the least "
        "a feature endpoint does; `ByHand`: the functions called one by one), `WithModel` "
        "(the row and a scikit-learn `LogisticRegression.predict_proba`) and `Ranker` "
        "(bench/features/ranker.py: the movie ranker's own `score_title`, as-of aggregates, "
        "`FEATURES.row`, its scorer pipeline and its serving log, on MovieLens requests, "
        "beside the same work without the log). `Logged` variants log every request: facts, "
        "lookups, the feature vector (its names once per segment) and the prediction; 1 MB "
        "segments, published, fsynced and renamed as it goes. The client speaks the worker's "
        "framing on its socket, 16 requests in flight, in chunks of one endpoint bracketed by "
        "readings of the worker's main thread CPU once it sleeps (schedstat, ns); the CPU of "
        "the worker's other threads over a round - the log's writer - is all added to the "
        "logged variant. 20 chunks per variant per round, alternating with its pair's; a "
        "0.6 s pause lets the writer drain. The figure is the ratio of the medians over the "
        "rounds; the chunk-paired figure beside it is the median over the chunk pairs "
        "(the same round and chunk index, close in time, each logged chunk carrying its "
        "round's writer CPU) of logged / plain - 1, less moved by the machine's drift "
        "between rounds.",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        f"| logging at 100% adds <= 5% to the worker's CPU per request (median of {rounds}) "
        f"| the movie ranker's `score_title`: "
        f"{pair('Ranker', 'RankerLogged', 'logging_overhead_ranker', 'logging_ranker')}; "
        f"a scikit-learn model: "
        f"{pair('WithModel', 'WithModelLogged', 'logging_overhead_with_model', 'logging_with_model')}; "  # noqa: E501
        f"the minimal endpoint: {pair('Plain', 'Logged', 'logging_overhead', 'logging')} "
        f"| ranker: {met(ranker_ok)}; model: {met(model_ok)}; minimal: {met(minimal_ok)} |",
        f"| a row in a service costs <= the functions by hand + 10% | in the worker: "
        f"{m['ByHand']:.2f} -> {m['Plain']:.2f} us ({cpu['set_vs_hand_in_service'] * 100:+.1f}%, "
        f"chunk-paired {p['set_vs_hand_in_service'] * 100:+.1f}%); in-process, best of 61 "
        f"chunks: {rows['by_hand_us']:.2f} -> {rows['row_us']:.2f} us "
        f"({rows['row_overhead'] * 100:+.1f}%) "
        f"| {met(max(rows['row_overhead'], cpu['set_vs_hand_in_service']) <= 0.10)} |",
        "",
        "Per round (us of worker CPU per request, the writer's included):",
        "",
        "| variant | " + " | ".join(str(r + 1) for r in range(rounds)) + " | median | writer |",
        "|---|" + "---|" * (rounds + 2),
    ]
    for v in VARIANTS:
        values = " | ".join(f"{x:.2f}" for x in cpu["per_request_us"][v])
        writer = cpu["writer_us"][v]
        lines.append(f"| {v} | {values} | {m[v]:.2f} | {f'{writer:.2f}' if writer else '-'} |")
    lines += [
        "",
        f"In-process (bench part 3, this process's threads only, hot caches): building the "
        f"facts and the row {parts['row_and_facts_us']:.2f} us; logging adds "
        f"{parts['request_thread_us']:.2f} us on the request thread and "
        f"{parts['writer_thread_us']:.2f} us on the writer thread. The pandas path Feast's "
        f"users complain about, a one-row DataFrame through `FeatureSet.frame`, costs "
        f"{rows['one_row_frame_us']:,.0f} us per row, against {rows['row_us']:.2f} us for `row`.",
        "",
        f"Segments written: {cpu['segments_written']} ({cpu['bytes_written']:,} bytes, zstd).",
    ]
    return "\n".join(lines)


def write_benchmarks(text: str) -> None:
    from flows import HEADER
    from measure import write_section

    write_section(REPO / "BENCHMARKS.md", START, END, text, HEADER)


if __name__ == "__main__":
    sys.exit(main())
