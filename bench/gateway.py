"""Gateway benchmark: direct, a minimal pooled proxy, shipyard's gateway and MLflow's gateway.

    .venv/bin/python bench/gateway.py                 # everything (~5 min on 2 cores), to stdout
    .venv/bin/python bench/gateway.py --write         # ... and updates BENCHMARKS.md
    .venv/bin/python bench/gateway.py --only direct,minimal,shipyard --duration 5 --warmup 1

One fake OpenAI-compatible upstream (bench/gateway/upstream.py: Starlette under uvicorn,
answering a fixed chat completion with a ``usage`` field at once, or the same as SSE when
the body asks for ``"stream": true``) serves every run. In front of it, one at a time, each
with one worker process:

- direct: wrk talks to the upstream itself (the floor of the whole setup);
- minimal: bench/gateway/minimal_proxy.py, Starlette + one shared ``httpx.AsyncClient`` -
  the floor for a Python proxy (no key, no limits, no accounting);
- shipyard: ``shipyard gateway --no-access-log`` with a key (``route:chat``), rate limits on
  the route and per key (high enough never to refuse) and usage accounting into the metadata
  DB (SQLite in a fresh SHIPYARD_HOME): what a deployment runs;
- mlflow: ``mlflow gateway start`` (pinned MLFLOW_VERSION, its own venv bench/.venvs/mlflow,
  made on first use), its OpenAI-compatible ``/v1/chat/completions``.

wrk (1 thread, a Lua POST script) runs at each of ``--connections`` (1, 32), streaming and
not, after a warm-up. wrk and the upstream are pinned to CPU 1, the server under test to
CPU 0 (``taskset``). Added latency is the server's p50/p99 minus direct's at the same
connections. Server CPU is user + system of every process of the server's tree
(/proc/PID/stat before and after the run), per request completed.

Reload under load: while wrk runs at ``--reload-connections`` (32), the gateway's YAML is
rewritten every ``--reload-every`` seconds (a route's limits change, a second route comes
and goes); wrk's bench/gateway/reload.lua counts the answers that are not 200 and the
longest time without any answer. The same is done to MLflow's gateway.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from flows import git_state
from measure import run_text
from servers import (
    BENCH,
    POST_LUA,
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

HERE = BENCH / "gateway"
# 3.18.0 is listed on PyPI but its mlflow-skinny==3.18.0 is not on the package index
# reachable here; 3.17.2 is the newest that installs.
MLFLOW_VERSION = "3.17.2"
UPSTREAM_KEY = "sk-bench-upstream-0000"
BODY = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "Say hello."}]})
STREAM_BODY = json.dumps(
    {"model": "chat", "messages": [{"role": "user", "content": "Say hello."}], "stream": True}
)
MODES = {"json": BODY, "sse": STREAM_BODY}
PARTS = ("direct", "minimal", "shipyard", "mlflow", "reload")
GOAL_ADDED_P50_MS = 0.5
GOAL_CPU_VS_MINIMAL = 1.5
GOAL_RPS_VS_MLFLOW = 2.5


# --------------------------------------------------------------------------- set-up


def ensure_mlflow(venv: Path) -> Path:
    """The ``mlflow`` command of ``venv``, with mlflow[gateway]==MLFLOW_VERSION installed."""
    check = "import mlflow.gateway.app, mlflow; print(mlflow.__version__)"
    requirement = f"mlflow[gateway]=={MLFLOW_VERSION}"
    return ensure_venv(venv, check, MLFLOW_VERSION, [requirement], timeout=1800).with_name("mlflow")


def shipyard_yaml(upstream: str, variant: int) -> str:
    """The gateway's routes; ``variant`` changes the limits and adds a route (for reloads)."""
    rpm = 60_000_000 + variant
    extra = ""
    if variant % 2:
        extra = f"""
  - name: spare
    type: chat
    upstream: {{provider: openai, base_url: "{upstream}/v1", model: bench-model}}
"""
    return f"""# written by bench/gateway.py (variant {variant})
routes:
  - name: chat
    type: chat
    upstream:
      provider: openai
      base_url: "{upstream}/v1"
      model: bench-model
      api_key: "${{BENCH_UPSTREAM_KEY}}"
    timeout: 30
    limits:
      requests_per_minute: {rpm}
      tokens_per_minute: 1000000000000
      per_key:
        requests_per_minute: {rpm}
        tokens_per_minute: 1000000000000
{extra}"""


def mlflow_yaml(upstream: str, variant: int) -> str:
    """MLflow's ``endpoints:`` file; ``variant`` changes a limit (for reloads)."""
    return f"""# written by bench/gateway.py (variant {variant})
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: bench-model-{variant % 2}
      config:
        openai_api_key: $BENCH_UPSTREAM_KEY
        openai_api_base: {upstream}/v1
"""


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- load


@dataclass
class Point:
    """One measured wrk run against one server."""

    server: str
    mode: str  # json or sse
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    cpu_seconds: float  # the server's tree during the run
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu_seconds / self.requests if self.requests else float("nan")


@dataclass
class Run(Bench):
    """Options and shared state of one benchmark run."""

    servers_cwd: Path = HERE
    upstream: str = ""
    points: list[Point] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        prefixes = ("SHIPYARD_", "MLFLOW_", "PYTHON", "BENCH_", "VIRTUAL_ENV")
        return clean_env(prefixes, BENCH_UPSTREAM_KEY=UPSTREAM_KEY, **extra)

    def measure(
        self,
        server: Server,
        name: str,
        url: str,
        mode: str,
        connections: int,
        *,
        key: str = "",
        seconds: float | None = None,
        script: Path = POST_LUA,
        during: Callable[[], None] | None = None,
    ) -> Point:
        """A warm-up, then one measured wrk run with the server's CPU read around it."""
        run, cpu = self.load(
            server, url, connections, [MODES[mode], key], seconds=seconds, script=script,
            during=during,
        )  # fmt: skip
        point = Point(
            server=name,
            mode=mode,
            connections=connections,
            requests=run.requests,
            seconds=run.seconds,
            p50_ms=run.p50_ms,
            p90_ms=run.p90_ms,
            p99_ms=run.p99_ms,
            max_ms=run.max_ms,
            errors=run.errors,
            cpu_seconds=cpu,
            extra={k: float(str(run.raw[k])) for k in ("not_200", "max_gap_us") if k in run.raw},
        )
        self.points.append(point)
        progress(
            f"  {name} {mode} c={connections}: {point.rps:,.0f} req/s, "
            f"p50 {point.p50_ms:.3f} ms, p99 {point.p99_ms:.3f} ms, max {point.max_ms:.1f} ms, "
            f"{point.cpu_us:.0f} CPU-us/req"
            + (f", errors {point.errors}" if point.errors else "")
            + (f", {point.extra}" if point.extra else "")
        )
        if script == POST_LUA:
            self.wrk_errors(f"{name} {mode} c={connections}", run, server)
        return point

    def sweep(self, server: Server, name: str, url: str, key: str = "") -> None:
        for mode in MODES:
            for c in self.args.connections:
                self.measure(server, name, url, mode, c, key=key)


def _answers(url: str, body: str, key: str = "") -> Callable[[], bool]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"

    def ready() -> bool:
        response = httpx.post(url, content=body, headers=headers, timeout=5)
        if response.status_code != 200:
            return False
        if b"Hello" not in response.content:
            raise BenchFailed(f"{url} answered {response.text[:300]!r}")
        return True

    return ready


def _check_both(url: str, key: str = "") -> None:
    for mode, body in MODES.items():
        if not _answers(url, body, key)():
            raise BenchFailed(f"{url} did not answer 200 to the {mode} body")


# --------------------------------------------------------------------------- parts


def upstream_server(run: Run) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    run.upstream = f"http://127.0.0.1:{port}"
    argv = [
        str(PYTHON), "-m", "uvicorn", "upstream:app", "--app-dir", str(HERE),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return run.server("upstream", argv, env=run.env(), pin=run.pin_load)


def part_direct(run: Run, upstream: Server) -> None:
    url = run.upstream + "/v1/chat/completions"
    _check_both(url)
    run.sweep(upstream, "direct", url)


def part_minimal(run: Run) -> None:
    port = free_port()
    argv = [
        str(PYTHON), "-m", "uvicorn", "minimal_proxy:app", "--app-dir", str(HERE),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--workers", "1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    with run.server("minimal", argv, env=run.env(BENCH_UPSTREAM=run.upstream)) as server:
        server.wait_until(_answers(url, BODY), 60)
        _check_both(url)
        run.sweep(server, "minimal", url)


@contextlib.contextmanager
def shipyard_gateway(run: Run) -> Iterator[tuple[Server, str, str, Path]]:
    """``shipyard gateway`` in a fresh SHIPYARD_HOME: (server, url, key, config path)."""
    home = run.workdir / "shipyard-home"
    config = run.workdir / "gateway.yaml"
    write_atomic(config, shipyard_yaml(run.upstream, 0))
    env = run.env(SHIPYARD_HOME=str(home))
    created = run_text(
        [str(PYTHON), "-m", "shipyard", "keys", "create", "--scope", "route:chat",
         "--name", "bench"], timeout=120, env=env,
    )  # fmt: skip
    key = created.strip().splitlines()[-1].strip()
    port = free_port()
    argv = [
        str(PYTHON), "-m", "shipyard", "gateway", "--config", str(config),
        "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    with run.server("shipyard", argv, env=env) as server:
        server.wait_until(_answers(url, BODY, key), 60)
        _check_both(url, key)
        yield server, url, key, config


def part_shipyard(run: Run) -> None:
    with shipyard_gateway(run) as (server, url, key, _config):
        run.sweep(server, "shipyard", url, key)
        usage = run_text(
            [str(PYTHON), "-m", "shipyard", "gateway", "usage", "--json"],
            timeout=120,
            env=run.env(SHIPYARD_HOME=str(run.workdir / "shipyard-home")),
        )
    with contextlib.suppress(ValueError, TypeError, KeyError, IndexError):
        rows = json.loads(usage)
        rows = rows if isinstance(rows, list) else rows.get("usage", rows.get("rows", []))
        counted = sum(int(r.get("requests", 0)) for r in rows)
        run.notes["shipyard usage"] = f"{counted:,} requests accounted in the metadata DB"


@contextlib.contextmanager
def mlflow_gateway(run: Run, workers: int) -> Iterator[tuple[Server, str, Path]]:
    mlflow = ensure_mlflow(BENCH / ".venvs" / "mlflow")
    run.versions["mlflow"] = MLFLOW_VERSION
    config = run.workdir / "mlflow.yaml"
    write_atomic(config, mlflow_yaml(run.upstream, 0))
    port = free_port()
    argv = [
        str(mlflow), "gateway", "start", "--config-path", str(config),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = run.env(
        MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS="true",
        VIRTUAL_ENV=str(mlflow.parent.parent),
        PATH=f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    with run.server(f"mlflow-{workers}", argv, env=env) as server:
        server.wait_until(_answers(url, BODY), 120)
        _check_both(url)
        yield server, url, config


def part_mlflow(run: Run) -> None:
    for workers in run.args.mlflow_workers:
        try:
            with mlflow_gateway(run, workers) as (server, url, _config):
                run.sweep(server, f"mlflow-{workers}", url)
        except (BenchFailed, RuntimeError, httpx.HTTPError) as exc:
            run.fail(f"mlflow-{workers}", exc)


def _rewriter(
    path: Path, render: Callable[[int], str], every: float, seconds: float
) -> Callable[[], None]:
    def work() -> None:
        time.sleep(min(every, 1.0))
        deadline = time.monotonic() + seconds - 1.0
        variant = 1
        while time.monotonic() < deadline:
            write_atomic(path, render(variant))
            variant += 1
            time.sleep(every)

    return work


_RELOADS = re.compile(r'^shipyard_gateway_reloads_total\{outcome="(\w+)"\}\s+(\S+)$', re.M)


def _shipyard_reloads(base: str) -> dict[str, float]:
    text = httpx.get(base + "/metrics", timeout=10).text
    return {outcome: float(value) for outcome, value in _RELOADS.findall(text)}


def part_reload(run: Run) -> None:
    args = run.args
    c, seconds, every = args.reload_connections, args.reload_duration, args.reload_every
    with shipyard_gateway(run) as (server, url, key, config):
        base = url.split("/v1/")[0]
        before = _shipyard_reloads(base)
        work = _rewriter(config, lambda v: shipyard_yaml(run.upstream, v), every, seconds)
        point = run.measure(
            server, "shipyard-reload", url, "json", c, key=key, seconds=seconds,
            script=HERE / "reload.lua", during=work,
        )  # fmt: skip
        time.sleep(1)
        after = _shipyard_reloads(base)
        for outcome in ("applied", "refused"):
            point.extra[f"reloads_{outcome}"] = after.get(outcome, 0) - before.get(outcome, 0)
        progress(f"  reloads: {point.extra}")
    if "mlflow" not in args.parts or args.no_mlflow_reload:
        return
    workers = max(args.mlflow_workers)
    try:
        with mlflow_gateway(run, workers) as (server, url, config):
            log0 = server.log.read_text(errors="replace").count("reloading workers")
            work = _rewriter(config, lambda v: mlflow_yaml(run.upstream, v), every, seconds)
            point = run.measure(
                server, f"mlflow-{workers}-reload", url, "json", c, seconds=seconds,
                script=HERE / "reload.lua", during=work,
            )  # fmt: skip
            log1 = server.log.read_text(errors="replace").count("reloading workers")
            point.extra["reloads_applied"] = float(log1 - log0)
    except (BenchFailed, RuntimeError, httpx.HTTPError) as exc:
        run.fail(f"mlflow-{workers}-reload", exc)


# --------------------------------------------------------------------------- report


def find(run: Run, server: str, mode: str, connections: int) -> Point | None:
    for point in run.points:
        if (point.server, point.mode, point.connections) == (server, mode, connections):
            return point
    return None


def ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 10 else f"{value:.1f} ms"


def display(name: str) -> str:
    if name.startswith("mlflow-"):
        n = int(name.split("-")[1])
        return f"MLflow gateway {MLFLOW_VERSION}, {n} worker{'s' if n > 1 else ''} (+ gunicorn)"
    return {
        "direct": "direct to the upstream",
        "minimal": "minimal pooled proxy (Starlette + httpx)",
        "shipyard": "shipyard gateway (key, limits, accounting)",
    }[name]


def main_table(run: Run) -> list[str]:
    names = ["direct", "minimal", "shipyard", *(f"mlflow-{w}" for w in run.args.mlflow_workers)]
    rows = [
        "| server | answer | connections | requests/s | p50 | p99 | added p50 | added p99 "
        "| server CPU-µs / request |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        for name in names:
            for c in run.args.connections:
                point = find(run, name, mode, c)
                if point is None:
                    continue
                direct = find(run, "direct", mode, c)
                added50 = added99 = "—"
                if direct is not None and name != "direct":
                    added50 = f"{point.p50_ms - direct.p50_ms:+.3f} ms"
                    added99 = f"{point.p99_ms - direct.p99_ms:+.3f} ms"
                rps = f"{point.rps:,.0f}" + (" (with errors)" if point.errors else "")
                what = "JSON" if mode == "json" else "SSE stream"
                rows.append(
                    f"| {display(name)} | {what} | {c} | {rps} | {ms(point.p50_ms)} | "
                    f"{ms(point.p99_ms)} | {added50} | {added99} | {point.cpu_us:.0f} |"
                )
    return rows


def _socket_errors(point: Point) -> int:
    """wrk's connect/read/write/timeout errors (a write error per attempt on a dead socket,
    so this counts attempts, not requests)."""
    return sum(v for k, v in point.errors.items() if k != "status")


def reload_table(run: Run) -> list[str]:
    points = [p for p in run.points if p.server.endswith("-reload")]
    if not points:
        return []
    rows = [
        "| server | reloads applied | answers | answers not 200 | socket errors (wrk) | p50 "
        "| p99 | max latency | longest time without an answer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        rows.append(
            f"| {display(p.server.removesuffix('-reload'))} | "
            f"{p.extra.get('reloads_applied', 0):.0f} | {p.requests:,} | "
            f"{int(p.extra.get('not_200', 0))} | {_socket_errors(p):,} | "
            f"{ms(p.p50_ms)} | {ms(p.p99_ms)} | {ms(p.max_ms)} | "
            f"{ms(p.extra.get('max_gap_us', 0) / 1000)} |"
        )
    return rows


def goals(run: Run) -> list[str]:
    rows = ["| goal | measured | met |", "|---|---|---|"]
    top = max(run.args.connections)
    for mode in MODES:
        what = "JSON" if mode == "json" else "SSE"
        ship, direct = find(run, "shipyard", mode, 1), find(run, "direct", mode, 1)
        if ship and direct:
            added = ship.p50_ms - direct.p50_ms
            rows.append(
                f"| {what}: added p50 at 1 connection ≤ {GOAL_ADDED_P50_MS} ms | "
                f"{added:+.3f} ms ({ms(ship.p50_ms)} vs direct {ms(direct.p50_ms)}) | "
                f"{yes(added <= GOAL_ADDED_P50_MS)} |"
            )
        for c in run.args.connections:
            ship, minimal = find(run, "shipyard", mode, c), find(run, "minimal", mode, c)
            if ship and minimal:
                ratio = ship.cpu_us / minimal.cpu_us
                rows.append(
                    f"| {what}, c={c}: CPU per request ≤ {GOAL_CPU_VS_MINIMAL}x the minimal "
                    f"proxy's (auth, limits, accounting on) | {ship.cpu_us:.0f} vs "
                    f"{minimal.cpu_us:.0f} µs: {ratio:.2f}x | {yes(ratio <= GOAL_CPU_VS_MINIMAL)} |"
                )
        ship = find(run, "shipyard", mode, top)
        for workers in run.args.mlflow_workers:
            other = find(run, f"mlflow-{workers}", mode, top)
            if ship and other:
                speed = ship.rps / other.rps
                rows.append(
                    f"| {what}, c={top}: requests/s ≥ {GOAL_RPS_VS_MLFLOW}x MLflow's "
                    f"({workers} worker{'s' if workers > 1 else ''}) | {ship.rps:,.0f} vs "
                    f"{other.rps:,.0f}: {speed:.1f}x | {yes(speed >= GOAL_RPS_VS_MLFLOW)} |"
                )
    reload = find(run, "shipyard-reload", "json", run.args.reload_connections)
    if reload is not None:
        failed = int(reload.extra.get("not_200", 0)) + _socket_errors(reload)
        n = reload.extra.get("reloads_applied", 0)
        rows.append(
            f"| config reload under load: 0 failed requests | {failed} failed of "
            f"{reload.requests:,}, {n:.0f} reloads, max latency {ms(reload.max_ms)} | "
            f"{yes(failed == 0 and n > 0)} |"
        )
    return rows


def section(run: Run, command: str, when: str) -> str:
    m, args = run.machine, run.args
    pinned = (
        "wrk and the upstream pinned to CPU 1, the server under test to CPU 0 (`taskset`)"
        if run.pin_server
        else "no CPU pinning (`--no-pin`)"
    )
    versions = ", ".join(f"{k} {v}" for k, v in sorted(run.versions.items()))
    lines = [
        "## Gateway: direct, a minimal proxy, shipyard's gateway and MLflow's, on one upstream",
        "",
        f"Measured {when} with `{command}` (from the repository root).",
        "",
        machine_line(m) + ".",
        f"- Versions: {versions}.",
        "- Upstream: `bench/gateway/upstream.py` (Starlette, uvicorn + uvloop + httptools, 1 "
        "process) answers a fixed chat completion with `usage` at once, or the same as 5 SSE "
        'events in one write when the body has `"stream": true`.',
        "- Every server has one worker process (MLflow's also has its gunicorn arbiter); "
        "shipyard runs `shipyard gateway --no-access-log` with a `route:chat` key, rate limits "
        "per route and per key (high enough never to refuse) and usage accounting to SQLite "
        "in a fresh SHIPYARD_HOME; MLflow runs `mlflow gateway start` from "
        "`bench/.venvs/mlflow` and is called on its OpenAI-compatible `/v1/chat/completions`.",
        f"- Load: wrk {run.versions.get('wrk', '')}, 1 thread, `--latency`, keep-alive, "
        f"`bench/serve/post.lua`; {args.duration:g} s per measured run after a "
        f"{args.warmup:g} s warm-up; {pinned}.",
        "",
        *main_table(run),
        "",
        f"Reload under load: wrk at {args.reload_connections} connections for "
        f"{args.reload_duration:g} s while the YAML is rewritten every {args.reload_every:g} s "
        "(shipyard: a route's limits change and a second route comes and goes; MLflow: the "
        "endpoint's model name changes, which makes it restart its workers). Counted by "
        "`bench/gateway/reload.lua`.",
        "",
        *reload_table(run),
        "",
        "Goals (from the issue):",
        "",
        *goals(run),
    ]
    if run.notes:
        lines += ["", *(f"- {k}: {v}" for k, v in run.notes.items())]
    lines += failed_lines(run.errors)
    lines += [
        "",
        "How to read it:",
        "",
        "- p50/p99: wrk's, from the request written to the response read (for SSE, to the "
        "last event). Added: minus direct's at the same connections and answer.",
        "- server CPU-µs / request: user + system CPU of every process of the server's tree "
        "(/proc/PID/stat before and after the run) over the requests completed; the upstream's "
        "CPU is not in it (for direct, it is the upstream's own).",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_options(parser, PARTS)
    parser.add_argument("--mlflow-workers", default="1", help="MLflow workers, comma-separated")
    parser.add_argument("--reload-connections", type=int, default=32)
    parser.add_argument("--reload-duration", type=float, default=10.0)
    parser.add_argument("--reload-every", type=float, default=1.0, help="seconds between writes")
    parser.add_argument("--no-mlflow-reload", action="store_true", help="reload shipyard only")
    add_output_options(
        parser, no_pin="do not pin wrk and the servers", keep="keep bench/.work/gateway-*"
    )
    args = parser.parse_args(argv)
    check_options(parser, args, PARTS)
    args.mlflow_workers = sorted({int(w) for w in args.mlflow_workers.split(",")})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = start(Run, args, "gateway")
    workdir = run.workdir
    run.versions.update(
        {
            "shipyard": f"{importlib.metadata.version('shipyard')} ({git_state()})",
            **{
                p: importlib.metadata.version(p)
                for p in ("starlette", "uvicorn", "httpx", "httptools")
            },
        }
    )
    progress(f"work directory {workdir}; parts {args.parts}")
    parts: dict[str, Callable[[Run], None]] = {
        "minimal": part_minimal,
        "shipyard": part_shipyard,
        "mlflow": part_mlflow,
        "reload": part_reload,
    }
    try:
        with upstream_server(run) as upstream:
            upstream.wait_until(_answers(run.upstream + "/v1/chat/completions", BODY), 60)
            for part in args.parts:
                try:
                    if part == "direct":
                        part_direct(run, upstream)
                    else:
                        parts[part](run)
                except (BenchFailed, RuntimeError, httpx.HTTPError) as exc:
                    run.fail(part, exc)
    except KeyboardInterrupt:
        progress(f"interrupted; servers stopped; logs in {workdir}")
        return 130
    except BenchFailed as exc:
        run.fail("upstream", exc)
    text = section(run, command("gateway", argv, run.machine), run.when)
    raw = {"points": [asdict(p) for p in run.points], "errors": run.errors}
    return finish(args, "gateway", text, raw, run.errors, workdir)


if __name__ == "__main__":
    sys.exit(main())
