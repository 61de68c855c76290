"""Serving benchmark: a bare Starlette app, BentoML and shipyard's host, on one machine.

    .venv/bin/python bench/serve.py                 # everything (~8 min on 2 cores), to stdout
    .venv/bin/python bench/serve.py --write         # ... and updates BENCHMARKS.md
    .venv/bin/python bench/serve.py --only bare,shipyard --duration 5 --warmup 1

Every server answers ``POST`` of ``{"features": [5.1, 3.5, 1.4, 0.2]}`` with the class index
of scikit-learn's LogisticRegression fitted on iris (bench/serve/iris_model.py):

- bare: bench/serve/bare_app.py, Starlette under uvicorn (uvloop + httptools, 1 worker), the
  model called in-process - the practical limit;
- bentoml: bench/serve/bentoml_service.py with BentoML's defaults, 1 and 2 worker processes,
  from its own venv (bench/.venvs/bentoml, made on first use with a pinned version);
- shipyard: ``shipyard serve`` with bench/serve/shipyard_service.py:Iris deployed, 1 and 2
  replicas (and 1 replica with ``--no-access-log``);
- batching: shipyard_service.py:Accelerator, whose model holds a lock ~5 ms per call (a
  serial device), through its batch endpoint and its one-row endpoint, at 64 and 1 clients.
- sleepy: a sync endpoint that waits 0.2 s on I/O (``time.sleep``), 1 replica, 16 clients
  (``--sleepy-clients``): shipyard_service.py:Sleepy inline (the default) and with
  ``@endpoint(concurrency=16)``, and bentoml_service.py:Sleepy, a sync API in BentoML's
  thread pool, with its default (1 thread) and with ``threads=16``.

With ``shipyard`` measured, the goals also compare the inline default's CPU-ms per request
with the figures BENCHMARKS.md held before the run (within 5%).

The load generator is Debian's wrk (installed with apt-get when missing), 1 thread, pinned
to CPU 1 with ``taskset -c 1``; every server process runs on CPU 0 (``taskset -c 0``, which
its workers inherit), so each server gets one whole core and never shares it with the load.
Each measured run (``--duration``, 10 s) follows a warm-up at the same concurrency
(``--warmup``, 3 s). Server CPU is user + system time of every process of the server's tree
(/proc/PID/stat, before and after the run); peak memory is the largest sum of RSS and of PSS
over the tree, sampled every 100 ms from start to stop.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from flows import git_state
from measure import MB, run_text
from servers import (
    BENCH,
    PYTHON,
    Bench,
    BenchFailed,
    Server,
    add_options,
    add_output_options,
    check_options,
    clean_env,
    command,
    ensure_venv,
    failed_lines,
    finish,
    free_port,
    machine_line,
    progress,
    start,
    yes,
)

SERVE = BENCH / "serve"
# 1.4.40 (the newest 1.4.x) needs certifi>=2026.10.19, which the package index reachable
# here does not have yet; 1.4.39 is the newest that installs.
BENTOML_VERSION = "1.4.39"
BODY = '{"features": [5.1, 3.5, 1.4, 0.2]}'
BATCH_BODY = '{"rows": [[5.1, 3.5, 1.4, 0.2]]}'
HOLD_MS = 5.0  # how long Accelerator holds its lock per call
MAX_WAIT_MS = 5.0  # Accelerator.classify's max_wait_ms (bench/serve/shipyard_service.py)
WAIT_MS = 200.0  # how long Sleepy's endpoints wait per call
POOL = 16  # Sleepy.wait_pooled's concurrency=, and BentoML's threads= beside it
PARTS = ("bare", "bentoml", "shipyard", "batching", "sleepy")


# --------------------------------------------------------------------------- tools


def ensure_bentoml(venv: Path) -> Path:
    """The python of ``venv`` with bentoml==BENTOML_VERSION and the driver's scikit-learn."""
    sklearn = importlib.metadata.version("scikit-learn")
    numpy = importlib.metadata.version("numpy")
    check = (
        "import bentoml, sklearn, numpy; "
        "print(bentoml.__version__, sklearn.__version__, numpy.__version__)"
    )
    return ensure_venv(
        venv,
        check,
        f"{BENTOML_VERSION} {sklearn} {numpy}",
        [f"bentoml=={BENTOML_VERSION}", f"scikit-learn=={sklearn}", f"numpy=={numpy}"],
        timeout=1200,
    )


# --------------------------------------------------------------------------- servers


def _post_ok(url: str, body: str, expect: str = "0") -> Callable[[], bool]:
    def ready() -> bool:
        response = httpx.post(
            url, content=body, headers={"content-type": "application/json"}, timeout=5
        )
        text = response.text.strip()
        if response.status_code == 200 and text.strip("[]") != expect:
            raise BenchFailed(f"{url} answered {text!r}, expected {expect!r}")
        return response.status_code == 200

    return ready


# --------------------------------------------------------------------------- load


@dataclass
class Point:
    """One measured wrk run against one server."""

    server: str
    endpoint: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    cpu_seconds: float  # server tree, during the run
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / self.requests if self.requests else float("nan")


@dataclass
class Config(Bench):
    """Options and shared state of one benchmark run."""

    servers_cwd: Path = SERVE
    points: list[Point] = field(default_factory=list)
    #: shipyard 1 replica's CPU-ms per request by connections, as BENCHMARKS.md had it
    previous_cpu: dict[int, float] = field(default_factory=dict)

    def measure(
        self,
        server: Server,
        url: str,
        connections: int,
        *,
        body: str = BODY,
        label: str | None = None,
        around: Callable[[], dict[str, float]] | None = None,
    ) -> Point:
        """A warm-up, then one measured wrk run with the server's CPU read around it."""
        before = around() if around else {}
        run, cpu = self.load(server, url, connections, [body])
        after = around() if around else {}
        point = Point(
            server=server.name,
            endpoint=label or url.rsplit("/", 1)[-1],
            connections=connections,
            requests=run.requests,
            seconds=run.seconds,
            p50_ms=run.p50_ms,
            p90_ms=run.p90_ms,
            p99_ms=run.p99_ms,
            mean_ms=run.mean_ms,
            max_ms=run.max_ms,
            errors=run.errors,
            cpu_seconds=cpu,
            extra={k: after[k] - before.get(k, 0.0) for k in after},
        )
        self.points.append(point)
        progress(
            f"  {point.endpoint} c={connections}: {point.rps:,.0f} req/s, "
            f"p50 {point.p50_ms:.2f} ms, p99 {point.p99_ms:.2f} ms, "
            f"{point.cpu_ms_per_request:.3f} CPU-ms/req"
            + (f", errors {point.errors}" if point.errors else "")
        )
        self.wrk_errors(f"{server.name} {point.endpoint} c={connections}", run, server)
        return point

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(("SHIPYARD_", "BENTOML_", "PYTHON", "BENCH_"), **extra)


# --------------------------------------------------------------------------- parts


def part_bare(cfg: Config) -> None:
    port = free_port()
    argv = [
        str(PYTHON), "-m", "uvicorn", "bare_app:app", "--app-dir", str(SERVE),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/predict"
    with cfg.server("bare", argv, env=cfg.env()) as server:
        server.wait_until(_post_ok(url, BODY), 120)
        for c in cfg.args.connections:
            cfg.measure(server, url, c)


@contextlib.contextmanager
def bentoml_server(
    cfg: Config, name: str, target: str, api: str, **extra_env: str
) -> Iterator[tuple[Server, str]]:
    """``bentoml serve target`` from its venv, answering at the URL of ``api``."""
    python = ensure_bentoml(BENCH / ".venvs" / "bentoml")
    cfg.versions["bentoml"] = BENTOML_VERSION
    port = free_port()
    argv = [
        str(python.parent / "bentoml"), "serve", target, "--working-dir", str(SERVE),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = cfg.env(
        BENTOML_HOME=str(cfg.workdir / "bentoml-home"),
        BENTOML_DO_NOT_TRACK="True",
        VIRTUAL_ENV=str(python.parent.parent),
        PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra_env,
    )
    url = f"http://127.0.0.1:{port}/{api}"
    with cfg.server(name, argv, env=env) as server:
        server.wait_until(_post_ok(url, BODY), 180)
        yield server, url


def part_bentoml(cfg: Config) -> None:
    for workers in cfg.args.workers:
        name = f"bentoml-{workers}"
        try:
            with bentoml_server(
                cfg, name, "bentoml_service:Iris", "predict", BENCH_BENTO_WORKERS=str(workers)
            ) as (server, url):
                for c in cfg.args.connections:
                    cfg.measure(server, url, c)
        except (BenchFailed, RuntimeError) as exc:
            cfg.fail(name, exc)


@contextlib.contextmanager
def shipyard_host(
    cfg: Config, name: str, target: str, service: str, replicas: int, *extra: str
) -> Iterator[tuple[Server, str]]:
    """``shipyard serve`` in a fresh SHIPYARD_HOME, with ``target`` deployed as ``service``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    home = cfg.workdir / f"home-{name}"
    env = cfg.env(SHIPYARD_HOME=str(home))
    argv = [str(PYTHON), "-m", "shipyard", "serve", "--port", str(port), *extra]
    with cfg.server(name, argv, env=env) as server:
        server.wait_until(lambda: httpx.get(base + "/healthz", timeout=2).status_code == 200, 120)
        deploy = [
            str(PYTHON), "-m", "shipyard", "deploy", str(SERVE / target), "--name", service,
            "--replicas", str(replicas), "--url", base,
        ]  # fmt: skip
        run_text(deploy, timeout=300, env=env)

        def ready() -> bool:
            data = httpx.get(base + "/readyz", timeout=2).json()
            return int(data["services"].get(service, {}).get("ready_replicas", 0)) >= replicas

        server.wait_until(ready, 120)
        workers = len(server.pids()) - 1
        if workers != replicas:
            raise BenchFailed(f"{name}: expected {replicas} worker processes, found {workers}")
        yield server, base


def part_shipyard(cfg: Config) -> None:
    cfg.versions["shipyard"] = f"{importlib.metadata.version('shipyard')} ({git_state()})"
    runs: list[tuple[str, int, tuple[str, ...]]] = [
        (f"shipyard-{r}", r, ()) for r in cfg.args.workers
    ]
    if not cfg.args.no_extra:
        runs.append(("shipyard-1-nolog", 1, ("--no-access-log",)))
    for name, replicas, extra in runs:
        try:
            with shipyard_host(cfg, name, "shipyard_service.py:Iris", "iris", replicas, *extra) as (
                server,
                base,
            ):
                url = base + "/iris/predict"
                _post_ok(url, BODY)()
                for c in cfg.args.connections:
                    cfg.measure(server, url, c)
        except (BenchFailed, RuntimeError) as exc:
            cfg.fail(name, exc)


_METRIC = re.compile(r"^(shipyard_batch_size_(?:sum|count))\{([^}]*)\}\s+(\S+)$", re.M)


def batch_stats(base: str, service: str, endpoint: str) -> dict[str, float]:
    """The host's shipyard_batch_size histogram sum and count for one endpoint."""
    text = httpx.get(base + "/metrics", timeout=10).text
    found = {"batch_sum": 0.0, "batch_count": 0.0}
    for name, labels, value in _METRIC.findall(text):
        if f'service="{service}"' in labels and f'endpoint="{endpoint}"' in labels:
            found["batch_" + name.rsplit("_", 1)[1]] = float(value)
    return found


def part_batching(cfg: Config) -> None:
    name = "batching"
    with shipyard_host(cfg, name, "shipyard_service.py:Accelerator", "accel", 1) as (server, base):
        batched, unbatched = base + "/accel/classify", base + "/accel/predict"
        _post_ok(batched, BATCH_BODY)()
        _post_ok(unbatched, BODY)()
        stats = lambda: batch_stats(base, "accel", "classify")  # noqa: E731
        for c in (cfg.args.batch_clients, 1):
            cfg.measure(server, batched, c, body=BATCH_BODY, label="classify", around=stats)
            cfg.measure(server, unbatched, c, label="predict")


def settled_measure(cfg: Config, server: Server, url: str, clients: int, label: str) -> Point:
    """The warm-up, then a pause until the calls wrk left queued are done, then the run.

    wrk leaves its last calls in flight when it stops: on a server running one call at a
    time, ``clients`` calls of WAIT_MS, which would run during the next run (or under the
    next endpoint's) and be counted there."""
    warmup = cfg.args.warmup
    if warmup > 0:
        cfg.wrk_run(url, clients, warmup, [BODY])
    time.sleep(clients * WAIT_MS / 1000 + 0.5)
    cfg.args.warmup = 0  # done above
    try:
        return cfg.measure(server, url, clients, label=label)
    finally:
        cfg.args.warmup = warmup


def part_sleepy(cfg: Config) -> None:
    """A sync endpoint waiting on I/O, 1 replica / 1 worker: inline against a pool of 16
    threads in shipyard, and BentoML's sync API with its default pool and with 16 threads."""
    clients = cfg.args.sleepy_clients
    name = "sleepy-shipyard"
    try:
        with shipyard_host(cfg, name, "shipyard_service.py:Sleepy", "sleepy", 1) as (server, base):
            for endpoint in ("wait", "wait_pooled"):
                url = f"{base}/sleepy/{endpoint}"
                _post_ok(url, BODY)()
                settled_measure(cfg, server, url, clients, endpoint)
    except (BenchFailed, RuntimeError) as exc:
        cfg.fail(name, exc)
    for threads in (0, POOL):
        name = f"sleepy-bentoml-{threads}" if threads else "sleepy-bentoml"
        extra = {"BENCH_BENTO_THREADS": str(threads)} if threads else {}
        try:
            with bentoml_server(cfg, name, "bentoml_service:Sleepy", "wait", **extra) as (
                server,
                url,
            ):
                settled_measure(cfg, server, url, clients, "wait")
        except (BenchFailed, RuntimeError) as exc:
            cfg.fail(name, exc)


# --------------------------------------------------------------------------- report


DISPLAY = {
    "bare": "bare Starlette + uvicorn",
    "bentoml-1": "BentoML, 1 worker",
    "bentoml-2": "BentoML, 2 workers",
    "shipyard-1": "shipyard, 1 replica",
    "shipyard-2": "shipyard, 2 replicas",
    "shipyard-1-nolog": "shipyard, 1 replica, `--no-access-log`",
}
PROCS = {"bare": 1, "bentoml-1": 1, "bentoml-2": 2, "shipyard-1": 1, "shipyard-2": 2}


def find(cfg: Config, server: str, connections: int, endpoint: str | None = None) -> Point | None:
    for point in cfg.points:
        if point.server == server and point.connections == connections:
            if endpoint is None or point.endpoint == endpoint:
                return point
    return None


def ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def mb(value: float) -> str:
    return f"{value / MB:.0f} MB"


def main_table(cfg: Config) -> list[str]:
    rows = [
        "| server | worker processes | connections | requests/s | p50 | p99 "
        "| server CPU-ms / request | peak RSS (tree) | peak PSS (tree) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, display in DISPLAY.items():
        memory = cfg.servers.get(name, {})
        for c in cfg.args.connections:
            point = find(cfg, name, c)
            if point is None:
                continue
            workers = {"bare": "1 (in-process)"}.get(name, "")
            if name.startswith("bentoml"):
                workers = f"{name[-1]} + 1 arbiter"
            if name.startswith("shipyard"):
                workers = f"{name.split('-')[1]} + 1 front"
            rps = f"{point.rps:,.0f}" + (" (with errors)" if point.errors else "")
            rows.append(
                f"| {display} | {workers} | {c} | {rps} | {ms(point.p50_ms)} | "
                f"{ms(point.p99_ms)} | {point.cpu_ms_per_request:.3f} | "
                f"{mb(memory.get('peak_rss', 0))} | {mb(memory.get('peak_pss', 0))} |"
            )
        if name in cfg.errors:
            rows.append(f"| {display} | | | failed | | | | | |")
    return rows


def goals(cfg: Config) -> list[str]:
    """The issue's goals for shipyard: CPU per request against the bare app and BentoML and
    p99 against BentoML at every connection count; requests/s against BentoML with as many
    worker processes at the most connections; p50 at one connection."""
    rows = ["| goal | measured | met |", "|---|---|---|"]
    for replicas in cfg.args.workers:
        who = f"shipyard {replicas} replica{'s' if replicas > 1 else ''}"
        same = f"BentoML's with {replicas} worker{'s' if replicas > 1 else ''}"
        for c in cfg.args.connections:
            ship = find(cfg, f"shipyard-{replicas}", c)
            if ship is None:
                continue
            bare, bento = find(cfg, "bare", c), find(cfg, f"bentoml-{replicas}", c)
            cpu = ship.cpu_ms_per_request
            if bare is not None:
                ratio = cpu / bare.cpu_ms_per_request
                rows.append(
                    f"| {who}, c={c}: server CPU-ms per request ≤ 2x the bare app's | "
                    f"{cpu:.3f} vs {bare.cpu_ms_per_request:.3f}: {ratio:.2f}x | "
                    f"{yes(ratio <= 2)} |"
                )
            if bento is not None:
                ratio = cpu / bento.cpu_ms_per_request
                rows.append(
                    f"| {who}, c={c}: server CPU-ms per request ≤ 1/4 of {same} | "
                    f"{cpu:.3f} vs {bento.cpu_ms_per_request:.3f}: 1/{1 / ratio:.1f} | "
                    f"{yes(ratio <= 0.25)} |"
                )
                speed = ship.rps / bento.rps
                # throughput is a claim about load: at fewer connections requests/s is
                # only 1/latency, shown for information
                met = yes(speed >= 4) if c == max(cfg.args.connections) else "(not judged)"
                rows.append(
                    f"| {who}, c={c}: requests/s ≥ 4x {same} | {ship.rps:,.0f} vs "
                    f"{bento.rps:,.0f}: {speed:.1f}x | {met} |"
                )
                rows.append(
                    f"| {who}, c={c}: p99 better than {same} | {ms(ship.p99_ms)} vs "
                    f"{ms(bento.p99_ms)} | {yes(ship.p99_ms < bento.p99_ms)} |"
                )
            if c == 1:
                rows.append(
                    f"| {who}, c=1: p50 ≤ 1 ms | {ms(ship.p50_ms)} | {yes(ship.p50_ms <= 1)} |"
                )
    rows.extend(inline_cpu_goals(cfg))
    rows.extend(batching_goals(cfg))
    rows.extend(sleepy_goals(cfg))
    return rows


def inline_cpu_goals(cfg: Config) -> list[str]:
    """The inline default's CPU-ms per request against BENCHMARKS.md's before this run: shown,
    not judged (two runs hours apart differ by more than 5 % on a shared VM; a change is
    judged by interleaved runs of two trees, as BENCHMARKS.md's before/after tables are)."""
    rows = []
    for c, before in sorted(cfg.previous_cpu.items()):
        point = find(cfg, "shipyard-1", c)
        if point is None:
            continue
        change = point.cpu_ms_per_request / before - 1
        rows.append(
            f"| shipyard 1 replica, c={c}: the inline default's CPU-ms per request within ±5% "
            f"of BENCHMARKS.md's before this run | {point.cpu_ms_per_request:.3f} vs "
            f"{before:.3f}: {change:+.1%} | (not judged: see the before/after table) |"
        )
    return rows


def sleepy_goals(cfg: Config) -> list[str]:
    clients = cfg.args.sleepy_clients
    inline = find(cfg, "sleepy-shipyard", clients, "wait")
    pooled = find(cfg, "sleepy-shipyard", clients, "wait_pooled")
    if inline is None or pooled is None:
        return []
    speed = pooled.rps / inline.rps if inline.rps else float("inf")
    rows = [
        f"| sleepy: `concurrency={POOL}` ≥ 15x the inline requests/s per replica | "
        f"{pooled.rps:,.1f} vs {inline.rps:,.1f} req/s: {speed:.1f}x | {yes(speed >= 15)} |"
    ]
    bento = find(cfg, f"sleepy-bentoml-{POOL}", clients)
    if bento is not None:
        rows.append(
            f"| sleepy: `concurrency={POOL}` against BentoML's sync API with threads={POOL}, "
            f"requests/s | {pooled.rps:,.1f} vs {bento.rps:,.1f} | (not judged) |"
        )
    return rows


def batching_goals(cfg: Config) -> list[str]:
    many = cfg.args.batch_clients
    b_many, u_many = find(cfg, "batching", many, "classify"), find(cfg, "batching", many, "predict")
    b_one, u_one = find(cfg, "batching", 1, "classify"), find(cfg, "batching", 1, "predict")
    rows = []
    if b_many and u_many:
        speed = b_many.rps / u_many.rps
        rows.append(
            f"| batching: batched throughput ≥ 10x unbatched at {many} clients | "
            f"{b_many.rps:,.0f} vs {u_many.rps:,.0f} req/s: {speed:.1f}x | {yes(speed >= 10)} |"
        )
    if b_one and u_one:
        slower = b_one.p50_ms - u_one.p50_ms
        rows.append(
            f"| batching: a lone client is slowed by ≤ max_wait_ms ({MAX_WAIT_MS:g} ms), p50 | "
            f"{ms(b_one.p50_ms)} vs {ms(u_one.p50_ms)}: {slower:+.2f} ms | "
            f"{yes(slower <= MAX_WAIT_MS)} |"
        )
    return rows


def batching_table(cfg: Config) -> list[str]:
    points = [p for p in cfg.points if p.server == "batching"]
    if not points:
        return []
    memory = cfg.servers.get("batching", {})
    rows = [
        "| endpoint | clients | requests/s | p50 | p99 | mean batch size "
        "| server CPU-ms / request |",
        "|---|---|---|---|---|---|---|",
    ]
    for point in sorted(points, key=lambda p: (-p.connections, p.endpoint)):
        kind = (
            "`classify` (batch, ≤64 rows, max_wait_ms 5)"
            if point.endpoint == "classify"
            else "`predict` (one row per call)"
        )
        count = point.extra.get("batch_count", 0)
        mean = f"{point.extra['batch_sum'] / count:.1f}" if count else "1 (no batching)"
        rps = f"{point.rps:,.0f}" + (" (with errors)" if point.errors else "")
        rows.append(
            f"| {kind} | {point.connections} | {rps} | {ms(point.p50_ms)} | "
            f"{ms(point.p99_ms)} | {mean} | {point.cpu_ms_per_request:.3f} |"
        )
    rows.append("")
    rows.append(
        f"Batching host: peak RSS {mb(memory.get('peak_rss', 0))}, "
        f"PSS {mb(memory.get('peak_pss', 0))} (front + 1 worker)."
    )
    return rows


SLEEPY = {
    ("sleepy-shipyard", "wait"): ("shipyard, `def` endpoint inline (the default)", "1"),
    ("sleepy-shipyard", "wait_pooled"): (
        f"shipyard, `@endpoint(concurrency={POOL})`",
        f"{POOL}",
    ),
    ("sleepy-bentoml", "wait"): ("BentoML, sync API, its default `threads`", "1"),
    (f"sleepy-bentoml-{POOL}", "wait"): (f"BentoML, sync API, `threads={POOL}`", f"{POOL}"),
}


def sleepy_table(cfg: Config) -> list[str]:
    rows = [
        "| server | threads per replica | clients | requests/s | p50 | p99 "
        "| server CPU-ms / request |",
        "|---|---|---|---|---|---|---|",
    ]
    found = False
    for (server, endpoint), (display, threads) in SLEEPY.items():
        point = find(cfg, server, cfg.args.sleepy_clients, endpoint)
        if point is None:
            continue
        found = True
        rps = f"{point.rps:,.1f}" + (" (with errors)" if point.errors else "")
        rows.append(
            f"| {display} | {threads} | {point.connections} | {rps} | {ms(point.p50_ms)} | "
            f"{ms(point.p99_ms)} | {point.cpu_ms_per_request:.3f} |"
        )
    return rows if found else []


def previous_cpu(path: Path) -> dict[int, float]:
    """shipyard 1 replica's CPU-ms per request by connections, from BENCHMARKS.md's table."""
    if not path.exists():
        return {}
    row = re.compile(
        r"^\| shipyard, 1 replica \|[^|]*\| (\d+) \|[^|]*\|[^|]*\|[^|]*\| ([\d.]+) \|", re.M
    )
    text = path.read_text()
    start = text.find("## Serving:")
    end = text.find("<!-- bench:serve:end -->", start)
    if start < 0 or end < 0:
        return {}
    return {int(c): float(cpu) for c, cpu in row.findall(text[start:end])}


def section(cfg: Config, command: str, when: str) -> str:
    m = cfg.machine
    args = cfg.args
    pinned = (
        "wrk pinned to CPU 1 (`taskset -c 1`), every server process pinned to CPU 0 "
        "(`taskset -c 0`, inherited by its workers): each server gets one core, the load the "
        "other, for every server alike - 2 workers or 2 replicas share that one core"
        if cfg.pin_server
        else "no CPU pinning (`--no-pin`): wrk and the servers share both cores"
    )
    versions = ", ".join(f"{k} {v}" for k, v in sorted(cfg.versions.items()))
    lines = [
        "## Serving: a bare Starlette app, BentoML and shipyard's host on one model",
        "",
        f"Measured {when} with `{command}` (from the repository root).",
        "",
        machine_line(m) + " (the script's own load is ~2: wrk and a server).",
        f"- Versions: {versions}.",
        f"- Load: wrk {cfg.versions.get('wrk', '')}, 1 thread, `--latency`, keep-alive "
        f"connections to 127.0.0.1; {args.duration:g} s per measured run after a "
        f"{args.warmup:g} s warm-up at the same concurrency; {pinned}.",
        "- Model: scikit-learn LogisticRegression fitted on iris at start; body "
        '`{"features": [5.1, 3.5, 1.4, 0.2]}`, answer `0`. Each server runs with its '
        "defaults: BentoML and shipyard log every request (access log), the bare app does not.",
        "",
        *main_table(cfg),
        "",
        "Goals (from the issue):",
        "",
        *goals(cfg),
    ]
    batch = batching_table(cfg)
    if batch:
        lines += [
            "",
            f"Batching: `Accelerator` holds one lock {HOLD_MS:g} ms per call of the model, "
            f"whatever the number of rows (a serial device); {args.batch_clients} and 1 wrk "
            "connections, 1 replica. Mean batch size from the host's `/metrics` "
            "(`shipyard_batch_size` sum / count over the measured run).",
            "",
            *batch,
        ]
    sleepy = sleepy_table(cfg)
    if sleepy:
        lines += [
            "",
            f"Sleepy: a `def` endpoint that waits {WAIT_MS:g} ms on I/O (`time.sleep`) per call; "
            f"{cfg.args.sleepy_clients} wrk connections, 1 replica (BentoML: 1 worker). Inline, "
            "a replica runs one call at a time; a pool of threads waits on many at once.",
            "",
            *sleepy,
        ]
    lines += failed_lines(cfg.errors)
    lines += [
        "",
        "How to read it:",
        "",
        "- requests/s, p50, p99: wrk's (latency from the request written to the response read,"
        " by one wrk thread; wrk waits for each answer before the next request on a connection).",
        "- server CPU-ms / request: user + system CPU of every process of the server's tree "
        "(read from /proc/PID/stat before and after the measured run) divided by the requests "
        "wrk completed. Peak RSS / PSS: the largest sum over the tree, sampled every 100 ms from "
        "start to stop (PSS splits pages shared between processes).",
        "- worker processes: the bare app is one process; BentoML runs an arbiter (circus) and "
        "its workers; shipyard runs the front (Starlette on uvicorn) and one process per replica, "
        "talking over a Unix socket.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_options(parser, PARTS, only_help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--workers", default="1,2", help="BentoML workers / shipyard replicas")
    parser.add_argument("--batch-clients", type=int, default=64, help="clients for batching")
    parser.add_argument("--no-extra", action="store_true", help="skip shipyard --no-access-log")
    parser.add_argument("--sleepy-clients", type=int, default=16, help="clients for sleepy")
    add_output_options(
        parser,
        no_pin="do not pin wrk and the servers",
        keep="keep bench/.work/serve-* and logs",
    )
    args = parser.parse_args(argv)
    check_options(parser, args, PARTS)
    args.workers = sorted({int(w) for w in args.workers.split(",")})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = start(Config, args, "serve")
    cfg.versions.update(
        {
            "starlette": importlib.metadata.version("starlette"),
            "uvicorn": importlib.metadata.version("uvicorn"),
            "uvloop": importlib.metadata.version("uvloop"),
            "httptools": importlib.metadata.version("httptools"),
            "scikit-learn": importlib.metadata.version("scikit-learn"),
        }
    )
    parts = {
        "bare": part_bare,
        "bentoml": part_bentoml,
        "shipyard": part_shipyard,
        "batching": part_batching,
        "sleepy": part_sleepy,
    }
    cfg.previous_cpu = previous_cpu(BENCH.parent / "BENCHMARKS.md")
    workdir = cfg.workdir
    progress(f"work directory {workdir}; parts {args.parts}")
    try:
        for part in args.parts:
            try:
                parts[part](cfg)
            except (BenchFailed, RuntimeError, httpx.HTTPError) as exc:
                cfg.fail(part, exc)
    except KeyboardInterrupt:
        progress(f"interrupted; servers stopped; logs in {workdir}")
        return 130
    text = section(cfg, command("serve", argv, cfg.machine), cfg.when)
    raw = {"points": [asdict(p) for p in cfg.points], "servers": cfg.servers, "errors": cfg.errors}
    return finish(args, "serve", text, raw, cfg.errors, workdir)


if __name__ == "__main__":
    sys.exit(main())
