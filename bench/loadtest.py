"""The load client, ``shipyard loadtest``, side by side with wrk (Debian's wrk 4.1) in the
same run.

    .venv/bin/python bench/loadtest.py                  # everything (~2 min), to stdout
    .venv/bin/python bench/loadtest.py --write          # ... and updates BENCHMARKS.md
    .venv/bin/python bench/loadtest.py --only capacity --duration 5 --warmup 1

Three parts, the issue's three goals:

- capacity: nginx (Debian's nginx-light, installed with apt-get when missing) answering
  ``return 200;`` with one worker pinned to CPU 0; the load pinned to CPU 1; wrk (1 thread)
  and ``shipyard loadtest --concurrency C`` (one process) at each ``--connections``. Goal:
  >= 5,000 requests/s from our one client process, closed model;
- accuracy: ``shipyard serve`` with bench/loadtest/echo_service.py:Echo deployed, where the
  server is the limit; the rps we report should be within 10 % of wrk's at the same
  concurrency;
- omission: bench/loadtest/stall_server.py stalling 1 s every 5 s; ``shipyard loadtest
  --rate 200`` (open model, over as many connections as wrk's), wrk and our closed model
  at the same connections. Goal: our corrected p99 shows the stall (>= 500 ms) where a
  closed client without correction (our closed model) does not. Debian's wrk 4.1 is no such
  client: it post-corrects its histogram (``stats_correct``, from the mean interval per
  connection, as HdrHistogram's ``copyCorrectedForCoordinatedOmission``), so its p99 shows
  the stall too; it is listed beside.

Each measured run (``--duration``) follows a warm-up at the same load (``--warmup``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx
from flows import git_state
from measure import run_text
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
    ensure_apt,
    failed_lines,
    finish,
    free_port,
    machine_line,
    progress,
    start,
    yes,
)

HERE = BENCH / "loadtest"
PARTS = ("capacity", "accuracy", "omission")
BODY = '{"x": 1}'
RATE = 200  # the omission part's steady rate
STALL, PERIOD = 1.0, 5.0


@dataclass
class Point:
    part: str
    tool: str  # wrk, shipyard
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    uncorrected_p99_ms: float | None = None
    client_cpu: float | None = None
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run(Bench):
    points: list[Point] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(("SHIPYARD_", "BENCH_"), **extra)

    def ours(self, url: str, connections: int, seconds: float, *extra: str) -> dict[str, Any]:
        """One ``shipyard loadtest`` run, pinned like the load; its summary.json."""
        out = self.workdir / f"loadtest-{len(self.points)}-{connections}"
        argv = [
            *self.pin_load, str(PYTHON), "-m", "shipyard", "loadtest", url, "--json", BODY,
            "--duration", f"{seconds:g}s", "--out", str(out), *extra,
        ]  # fmt: skip
        if "--rate" not in extra:
            argv += ["--concurrency", str(connections)]
        run_text(argv, timeout=seconds + 120, env=self.env())
        return dict(json.loads((out / "summary.json").read_text()))

    def both(self, part: str, server: Server, url: str, connections: int, *extra: str) -> None:
        seconds = self.args.duration
        if self.args.warmup > 0:
            self.wrk_run(url, connections, self.args.warmup, [BODY])
        w = self.load(server, url, connections, [BODY], seconds=seconds)[0]
        self.points.append(
            Point(part, "wrk", connections, w.requests / w.seconds, w.p50_ms, w.p99_ms,
                  errors=sum(w.errors.values()))
        )  # fmt: skip
        if self.args.warmup > 0:
            self.ours(url, connections, self.args.warmup, *extra)
        s = self.ours(url, connections, seconds, *extra)
        self.points.append(
            Point(part, "shipyard", connections, s["rps"], s["latency_ms"]["p50"],
                  s["latency_ms"]["p99"],
                  (s.get("latency_uncorrected_ms") or {}).get("p99"),
                  max(s["client"]["cpu"]), s["errors"], {"warnings": s["client"]["warnings"]})
        )  # fmt: skip
        progress(f"  {part} c={connections}: wrk {self.points[-2].rps:,.0f}/s, "
                 f"shipyard {s['rps']:,.0f}/s")  # fmt: skip


def _ready(url: str) -> Any:
    def check() -> bool:
        return httpx.post(url, content=BODY, timeout=2).status_code == 200

    return check


def part_capacity(run: Run) -> None:
    nginx = ensure_apt("nginx", "nginx-light")
    said = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=30)
    run.versions["nginx"] = (said.stdout + said.stderr).strip().split("/")[-1]
    port = free_port()
    conf = run.workdir / "nginx.conf"
    temp = run.workdir / "nginx-temp"
    temp.mkdir(exist_ok=True)
    conf.write_text(
        f"daemon off; worker_processes 1; pid {run.workdir}/nginx.pid;\n"
        f"error_log {run.workdir}/nginx-error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off; keepalive_requests 10000000; client_body_temp_path {temp};\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok'; }} }} }}\n"
    )
    url = f"http://127.0.0.1:{port}/"
    with run.server("nginx", [nginx, "-p", str(run.workdir), "-c", str(conf)], env={}) as server:
        server.wait_until(_ready(url), 30)
        for c in run.args.connections:
            run.both("capacity", server, url, c)


def part_accuracy(run: Run) -> None:
    run.versions["shipyard"] = f"{importlib.metadata.version('shipyard')} ({git_state()})"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**run.env(), "SHIPYARD_HOME": str(run.workdir / "home")}
    argv = [str(PYTHON), "-m", "shipyard", "serve", "--port", str(port), "--no-access-log"]
    with run.server("shipyard", argv, env=env) as server:
        server.wait_until(lambda: httpx.get(base + "/healthz", timeout=2).status_code == 200, 120)
        run_text(
            [str(PYTHON), "-m", "shipyard", "deploy", str(HERE / "echo_service.py") + ":Echo",
             "--name", "echo", "--url", base],
            timeout=300, env=env,
        )  # fmt: skip
        url = base + "/echo/echo"
        server.wait_until(_ready(url), 120)
        for c in run.args.connections:
            run.both("accuracy", server, url, c)


def part_omission(run: Run) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    argv = [str(PYTHON), str(HERE / "stall_server.py"), str(port), str(STALL), str(PERIOD)]
    with run.server("stall", argv, env=run.env()) as server:
        server.wait_until(lambda: _ready(url)(), 30)
        c = min(run.args.connections)
        run.both("omission", server, url, c, "--rate", str(RATE), "--max-connections", str(c))
        # what a closed client without correction records: our closed model, same connections
        s = run.ours(url, c, run.args.duration)
        run.points.append(
            Point("omission", "shipyard closed", c, s["rps"], s["latency_ms"]["p50"],
                  s["latency_ms"]["p99"], None, max(s["client"]["cpu"]), s["errors"])
        )  # fmt: skip


def tables(run: Run) -> list[str]:
    rows = [
        "| part | connections | tool | requests/s | p50 | p99 | p99 uncorrected | client CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in run.points:
        unc = f"{p.uncorrected_p99_ms:.2f} ms" if p.uncorrected_p99_ms is not None else "—"
        cpu = f"{p.client_cpu:.0%}" if p.client_cpu is not None else "—"
        rows.append(
            f"| {p.part} | {p.connections} | {p.tool} | {p.rps:,.0f} | {p.p50_ms:.2f} ms | "
            f"{p.p99_ms:.2f} ms | {unc} | {cpu} |"
        )
    return rows


def goals(run: Run) -> list[str]:
    rows = ["| goal | measured | met |", "|---|---|---|"]

    def find(part: str, tool: str) -> list[Point]:
        return [p for p in run.points if p.part == part and p.tool == tool]

    ours = find("capacity", "shipyard")
    if ours:
        best = max(ours, key=lambda p: p.rps)
        rows.append(f"| one client process >= 5,000 requests/s against nginx (closed) | "
                    f"{best.rps:,.0f}/s at {best.connections} connections | "
                    f"{yes(best.rps >= 5000)} |")  # fmt: skip
    for w, s in zip(find("accuracy", "wrk"), find("accuracy", "shipyard"), strict=False):
        off = s.rps / w.rps - 1 if w.rps else 1.0
        rows.append(
            f"| rps within 10 % of wrk's on the host, {w.connections} connections | "
            f"{s.rps:,.0f} vs {w.rps:,.0f} ({off:+.1%}) | {yes(abs(off) <= 0.10)} |"
        )
    closed = find("omission", "shipyard closed")
    for w, s in zip(find("omission", "wrk"), find("omission", "shipyard"), strict=False):
        naive = closed[0].p99_ms if closed else float("nan")
        rows.append(
            f"| a 1 s stall every 5 s at {RATE}/s: our corrected p99 >= 500 ms, an uncorrected "
            f"closed client's far below | {s.p99_ms:.0f} ms corrected; uncorrected "
            f"{s.uncorrected_p99_ms or 0:.1f} ms, closed {naive:.1f} ms; wrk {w.p99_ms:.1f} ms | "
            f"{yes(s.p99_ms >= 500 and naive < 100)} |"
        )
    return rows


def render(run: Run, how: str) -> str:
    lines = [
        "## Load client: `shipyard loadtest` and wrk side by side",
        "",
        f"- When: {run.when}; command: `{how}`",
        machine_line(run.machine, f"; wrk {run.versions.get('wrk', '?')}"),
        f"- Versions: {', '.join(f'{k} {v}' for k, v in sorted(run.versions.items()))}",
        f"- {run.args.duration:g} s measured after {run.args.warmup:g} s of warm-up; servers "
        "pinned to CPU 0, wrk and our client (one process) to CPU 1.",
        "",
        *goals(run),
        "",
        *tables(run),
        *failed_lines(run.errors),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser, PARTS)
    add_output_options(parser, no_pin="do not pin servers and load to CPUs",
                       keep="keep bench/.work/loadtest-* (logs, reports)")  # fmt: skip
    args = parser.parse_args(argv)
    check_options(parser, args, PARTS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = start(Run, args, "loadtest")
    run.versions["httptools"] = importlib.metadata.version("httptools")
    run.versions["uvloop"] = importlib.metadata.version("uvloop")
    parts = {"capacity": part_capacity, "accuracy": part_accuracy, "omission": part_omission}
    for part in args.parts:
        progress(f"part {part}")
        try:
            parts[part](run)
        except (BenchFailed, RuntimeError) as exc:
            run.fail(part, exc)
    text = render(run, command("loadtest", argv, run.machine))
    return finish(args, "loadtest", text, {"points": [p.__dict__ for p in run.points]},
                  run.errors, run.workdir)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
