"""Faults at full size: what shipyard promises under faults, measured on this machine.

    .venv/bin/python bench/chaos.py                 # every scenario at full size, table on stdout
    .venv/bin/python bench/chaos.py --quick         # small sizes: a smoke run in under a minute
    .venv/bin/python bench/chaos.py --write         # ... and replace the table in README.md
    .venv/bin/python bench/chaos.py --only replica_kill,overload

tests/chaos/ runs the same faults in CI, small and bounded, asserting counts; this script runs
them at the sizes of issue 12's findings and reports what it measured: requests failed per
replica killed, time to recover, the host's memory under a body flood, and so on. Every host
is ``shipyard serve`` of this checkout (``PYTHONPATH=src``) on 127.0.0.1 with a temporary
``SHIPYARD_HOME`` under bench/.work/chaos-*; the load comes from threads of this driver (one
``httpx.Client`` each, closed loop: a caller sends again as soon as it is answered). Every
loop is bounded in count and time; every host is stopped at the end of its scenario, and the
run ends by looking for worker processes it left behind (and killing them, saying so).

A scenario that cannot run here (no redis-server, say) is reported as "not run: <why>"; one
that fails is reported as "failed: <why>" and makes the exit code 1. Neither stops the others.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import re
import resource
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from measure import MB, machine, run_text, write_section
from servers import (
    BENCH,
    PYTHON,
    REPO,
    Bench,
    BenchFailed,
    Server,
    clean_env,
    free_port,
    progress,
)

README = REPO / "README.md"
BEGIN, END = "<!-- chaos:begin -->", "<!-- chaos:end -->"
JSON = {"content-type": "application/json"}
MAX_CALLS = 2_000_000  # no load loop makes more calls than this, whatever its duration
ENFORCED = r"replica memory limits: enforced by (\S+ memory cgroups|polling)"
TIMEOUT_S = 2  # the overrunning endpoints' timeout (SERVICES)

#: the services every scenario deploys from (written to the run's directory)
SERVICES = """
import asyncio
import os
import time

from shipyard.serve import Service, endpoint


class Echo(Service):
    @endpoint
    def echo(self, x: int, ms: float = 0.0) -> int:
        if ms:
            time.sleep(ms / 1000)
        return x

    @endpoint
    def length(self, data: str) -> int:
        return len(data)


class Sleepy(Service):
    def load(self):
        time.sleep(float(os.environ["LOAD_SECONDS"]))

    @endpoint
    def echo(self, x: int) -> int:
        return x


class Busy(Service):
    @endpoint
    def word(self, word: str) -> str:
        if word == "dead":
            os._exit(1)  # the worker is gone, with every request in flight on it
        time.sleep(0.02)
        return word


class Overrun(Service):
    @endpoint
    def echo_sync(self, x: int) -> int:
        time.sleep(0.02)
        return x

    @endpoint
    async def echo_async(self, x: int) -> int:
        await asyncio.sleep(0.02)
        return x

    @endpoint(timeout=TIMEOUT_S)
    def stall_sync(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @endpoint(timeout=TIMEOUT_S)
    async def stall_async(self, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds


class Hungry(Service):
    @endpoint
    def eat(self, mb: int) -> int:
        block = bytearray(mb << 20)  # zero-filled: every page is touched
        return len(block) >> 20
""".replace("TIMEOUT_S", str(TIMEOUT_S))


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """How big each scenario runs: the issue's sizes (full) or a smoke run's (quick)."""

    kill_replicas: int = 4
    kill_callers: int = 32
    kill_seconds: float = 20.0
    kill_every: float = 4.0
    overload_max_in_flight: int = 2
    overload_ms: float = 50.0  # each admitted call's work
    overload_seconds: float = 20.0
    flood_bodies: int = 40
    flood_mb: int = 15
    flood_after: float = 10.0  # seconds to wait before the second RSS reading
    slow_connections: int = 2000
    slow_header_timeout: float = 10.0  # the host's default
    slow_nofile: int = 512
    slow_probes: int = 20
    kill9_services: int = 4
    kill9_load_seconds: float = 3.0
    poison_callers: int = 8
    poison_seconds: float = 20.0
    overrun_callers: int = 16
    overrun_stall: float = 10.0  # what the overrunning calls would take (timeout TIMEOUT_S)
    overrun_settle: float = 3.0  # seconds after its answer still counted as its window
    redis_keys: int = 1000
    redis_seconds: float = 15.0
    memory_rounds: int = 5
    memory_limit_mb: int = 128
    memory_eat_mb: int = 300


FULL = Sizes()
QUICK = Sizes(
    kill_callers=8,
    kill_seconds=4.0,
    kill_every=2.0,
    overload_seconds=2.0,
    flood_bodies=6,
    flood_mb=4,
    flood_after=2.0,
    slow_connections=300,
    slow_header_timeout=2.0,
    slow_probes=5,
    kill9_services=2,
    kill9_load_seconds=1.0,
    poison_callers=4,
    poison_seconds=3.0,
    overrun_callers=4,
    overrun_stall=4.0,
    overrun_settle=1.0,
    redis_keys=100,
    redis_seconds=3.0,
    memory_rounds=1,
)


# --------------------------------------------------------------------------- results


class NotRun(Exception):
    """This machine cannot run the scenario; the message says why."""


@dataclass
class Result:
    """What one scenario measured: a sentence for the table, whether the promise held (None:
    not judged), and the raw numbers for ``--json``."""

    measured: str
    held: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chaos(Bench):
    """Options and shared state of one run: the services file, the sizes, the results."""

    sizes: Sizes = FULL
    code: Path = BENCH
    results: dict[str, Result] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        """The hosts' environment: this checkout's shipyard, nothing of the caller's."""
        return clean_env(("SHIPYARD_", "PYTHON", "BENCH_"), PYTHONPATH=str(REPO / "src"), **extra)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def times(n: int, word: str) -> str:
    """``1 replica``, ``2 replicas``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({100 * part / whole:.1f}%)" if whole else "0 of 0"


# --------------------------------------------------------------------------- hosts


def rss(pid: int) -> int:
    """Resident memory of one process in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def workers_under(prefix: Path) -> list[int]:
    """Live ``shipyard.serve.worker`` processes with an argument under ``prefix`` (a home)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry.name}/stat").read_bytes().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state in (b"Z", b"X") or b"shipyard.serve.worker" not in argv:
            continue
        if any(a.startswith(os.fsencode(prefix)) for a in argv):
            found.append(int(entry.name))
    return found


def poll(condition: Callable[[], bool], seconds: float, every: float = 0.02) -> float | None:
    """Seconds until ``condition()`` held, polled every ``every`` s; None after ``seconds``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError, KeyError):
            if condition():
                return time.monotonic() - t0
        time.sleep(every)
    return None


@dataclass
class Host:
    """One running ``shipyard serve``: its process, URL, home and environment."""

    server: Server
    url: str
    home: Path
    env: dict[str, str]
    code: Path
    healthz_seconds: float = 0.0  # from the start of the process to the first /healthz 200

    @property
    def pid(self) -> int:
        assert self.server.popen is not None
        return self.server.popen.pid

    def rss(self) -> int:
        """The front process's resident memory (the host itself, not its workers)."""
        return rss(self.pid)

    def deploy(self, cls: str, name: str, *extra: str) -> None:
        """``shipyard deploy``; returns once every replica is ready."""
        argv = [
            str(PYTHON), "-m", "shipyard", "deploy", f"{self.code}:{cls}", "--name", name,
            "--url", self.url, *extra,
        ]  # fmt: skip
        progress(f"  deploy {cls} as {name} {' '.join(extra)}")
        run_text(argv, timeout=300, env=self.env)

    def admin(self, path: str) -> Any:
        token = (self.home / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        response = httpx.get(self.url + path, headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def ready_pids(self, service: str) -> list[int]:
        """The pids of the service's ready replicas, from the admin API."""
        live = self.admin(f"/api/v1/deployments/{service}")["live"]
        return [int(r["pid"]) for r in live if r["ready"] and r["pid"]]

    def metric(self, name: str) -> float:
        """One sample of ``/metrics`` by its full name with labels; 0 when absent."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def post(self, path: str, body: Any, timeout: float = 30) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=timeout)

    def kill9(self) -> None:
        """kill -9 of the host process alone (its workers are left to their fate)."""
        assert self.server.popen is not None
        self.server.popen.kill()
        self.server.popen.wait(30)


@contextlib.contextmanager
def host(
    run: Chaos, name: str, *args: str, home: Path | None = None, nofile: int | None = None
) -> Iterator[Host]:
    """``shipyard serve ARGS`` on a free port, with a fresh home (or ``home``) and, with
    ``nofile``, that file limit (``prlimit``, as ``ulimit -n``); stopped when the block ends,
    with whatever of its process tree is left."""
    home = home or run.workdir / f"home-{name}"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = run.env(SHIPYARD_HOME=str(home))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = ["prlimit", f"--nofile={nofile}:{hard}"] if nofile else []
    argv = [*limit, str(PYTHON), "-m", "shipyard", "serve", "--port", str(port), *args]
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    with run.server(name, argv, env=env) as server:
        made = Host(server, url, home, env, run.code)
        took = poll(lambda: server.alive() and _healthy(url), 120)
        if took is None or not server.alive():
            raise BenchFailed(f"{name}: /healthz did not answer; log {server.log}\n{server.tail()}")
        made.healthz_seconds = time.monotonic() - t0
        yield made


def _healthy(url: str) -> bool:
    return httpx.get(url + "/healthz", timeout=1).status_code == 200


class RssSampler:
    """The resident memory of one process every ``every`` seconds, in a thread, while the
    ``with`` block runs: its peak."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.peak = rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, rss(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Call:
    """One answered (or failed) call of a load."""

    start: float  # time.monotonic() when sent
    seconds: float
    status: int  # 0: no answer (connection refused or reset, timeout)
    error: str  # the error body's "type" (or the exception's class); "" for a 200
    retry_after: bool

    @property
    def failed(self) -> bool:
        return self.status != 200


def call(client: httpx.Client, url: str, body: bytes) -> Call:
    """POST ``body`` to ``url`` once."""
    t0 = time.monotonic()
    try:
        response = client.post(url, content=body, headers=JSON)
    except httpx.HTTPError as exc:
        return Call(t0, time.monotonic() - t0, 0, type(exc).__name__, False)
    error = ""
    if response.status_code != 200:
        try:
            error = str(response.json()["error"]["type"])
        except (ValueError, KeyError, TypeError):
            error = f"http_{response.status_code}"
    return Call(
        t0, time.monotonic() - t0, response.status_code, error, "retry-after" in response.headers
    )


class Load:
    """``callers`` threads, each posting ``body`` to ``url`` again as soon as it is answered
    (a closed loop), for ``seconds`` or until the block ends, at most MAX_CALLS in all."""

    def __init__(
        self, url: str, body: Any, callers: int, seconds: float, timeout: float = 30
    ) -> None:
        self.url, self.body = url, json.dumps(body).encode()
        self.callers, self.seconds, self.timeout = callers, seconds, timeout
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _caller(self) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if len(self.calls) >= MAX_CALLS:
                    return
                self.calls.append(call(client, self.url, self.body))

    def __enter__(self) -> Load:
        self._threads = [
            threading.Thread(target=self._caller, daemon=True) for _ in range(self.callers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def wait(self) -> None:
        """Until every caller's time is up."""
        for thread in self._threads:
            thread.join(self.seconds + self.timeout + 10)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.wait()

    def failed(self, start: float = 0.0, end: float = float("inf")) -> list[Call]:
        return [c for c in self.calls if c.failed and start <= c.start < end]

    def count(self, start: float = 0.0, end: float = float("inf")) -> int:
        return sum(start <= c.start < end for c in self.calls)


def kinds(calls: list[Call]) -> str:
    """``503 worker_crashed ×3, 0 ConnectError ×1`` (most common first)."""
    counted = Counter(f"{c.status} {c.error}".strip() for c in calls)
    return ", ".join(f"{k} ×{n}" for k, n in counted.most_common()) or "none"


# --------------------------------------------------------------------------- scenarios


def replica_kill(run: Chaos) -> Result:
    """kill -9 of one replica every ``kill_every`` s under a closed-loop load."""
    s = run.sizes
    with host(run, "replica-kill", "--no-access-log") as h:
        h.deploy("Echo", "echo", "--replicas", str(s.kill_replicas))
        replaced: list[float] = []
        with Load(h.url + "/echo/echo", {"x": 1}, s.kill_callers, s.kill_seconds) as load:
            t0 = time.monotonic()
            # a kill at every multiple of kill_every within the load (late if a replacement
            # took longer), each time another replica
            for k in range(1, int(s.kill_seconds / s.kill_every - 1e-9) + 1):
                time.sleep(max(0.0, t0 + k * s.kill_every - time.monotonic()))
                ready = h.ready_pids("echo") or [0]  # 0: none ready, caught just below
                victim = ready[k % len(ready)]
                if not victim:
                    raise BenchFailed(f"no ready replica of echo to kill; log {h.server.log}")
                os.kill(victim, signal.SIGKILL)
                took = poll(functools.partial(_replaced, h, victim, s.kill_replicas), 30)
                replaced.append(took if took is not None else float("inf"))
                progress(f"  killed replica pid {victim}; replaced in {ms(replaced[-1])}")
            load.wait()
    calls, failed = load.calls, load.failed()
    kills = len(replaced)
    per_kill = len(failed) / kills if kills else float("nan")
    text = (
        f"{s.kill_replicas} replicas, {s.kill_callers} callers for {s.kill_seconds:g} s, "
        f"{times(kills, 'replica')} killed: {share(len(failed), len(calls))} requests failed, "
        f"{per_kill:.1f} per replica killed ({kinds(failed)}); the killed replica was "
        f"replaced and ready in {ms(median(replaced))} median, {ms(max(replaced, default=0))} max"
    )
    raw = {"calls": len(calls), "failed": len(failed), "kills": kills, "replaced_s": replaced}
    return Result(text, held=all(t < 30 for t in replaced) and kills > 0, raw=raw)


def _replaced(h: Host, victim: int, replicas: int) -> bool:
    pids = h.ready_pids("echo")
    return len(pids) == replicas and victim not in pids


def overload(run: Chaos) -> Result:
    """10x the capacity offered: max-in-flight callers' worth of work, times ten."""
    s = run.sizes
    capacity = s.overload_max_in_flight
    args = ("--no-access-log", "--max-in-flight", str(capacity))
    with host(run, "overload", *args) as h:
        h.deploy("Echo", "echo")
        body = {"x": 1, "ms": s.overload_ms}
        before = h.rss()
        with RssSampler(h.pid) as sampler:
            with Load(h.url + "/echo/echo", body, 10 * capacity, s.overload_seconds) as load:
                load.wait()
        time.sleep(1)
        after = h.rss()
    calls = load.calls
    refused = [c for c in calls if c.status == 503]
    with_retry = sum(c.retry_after for c in refused)
    latencies = [c.seconds for c in refused]
    others = [c for c in calls if c.status not in (200, 503)]
    text = (
        f"1 replica, `--max-in-flight {capacity}`, each call {s.overload_ms:g} ms of work, "
        f"{10 * capacity} callers for {s.overload_seconds:g} s: "
        f"{share(len(refused), len(calls))} answered 503, {with_retry:,} of them with "
        f"`Retry-After`, in {ms(quantile(latencies, 0.5))} p50 / {ms(quantile(latencies, 0.99))} "
        f"p99; other failures: {kinds(others)}; host RSS {before / MB:.0f} MB before, "
        f"{sampler.peak / MB:.0f} MB peak, {after / MB:.0f} MB after"
    )
    held = with_retry == len(refused) > 0 and not others and after - before < 50 * MB
    raw = {
        "calls": len(calls),
        "refused": len(refused),
        "retry_after": with_retry,
        "p50_s": quantile(latencies, 0.5),
        "p99_s": quantile(latencies, 0.99),
        "rss_before": before,
        "rss_peak": sampler.peak,
        "rss_after": after,
    }
    return Result(text, held=held, raw=raw)


def body_flood(run: Chaos) -> Result:
    """``flood_bodies`` concurrent bodies of ``flood_mb`` MB each, once."""
    s = run.sizes
    with host(run, "body-flood", "--no-access-log") as h:
        h.deploy("Echo", "echo")
        body = b'{"data": "' + b"a" * (s.flood_mb * MB - 12) + b'"}'
        answers: list[Call] = []

        def send() -> None:
            with httpx.Client(timeout=120) as client:
                answers.append(call(client, h.url + "/echo/length", body))

        before = h.rss()
        with RssSampler(h.pid) as sampler:
            threads = [threading.Thread(target=send, daemon=True) for _ in range(s.flood_bodies)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(180)
        peak = sampler.peak
        progress(f"  answered; RSS peak {peak / MB:.0f} MB; waiting {s.flood_after:g} s")
        time.sleep(s.flood_after)
        later = h.rss()
    statuses = Counter(c.status for c in answers)
    text = (
        f"{s.flood_bodies} concurrent {s.flood_mb} MB bodies: host RSS {before / MB:.0f} MB "
        f"before, {peak / MB:,.0f} MB peak, {later / MB:,.0f} MB {s.flood_after:g} s later; "
        f"answers {', '.join(f'{k} ×{n}' for k, n in sorted(statuses.items()))}"
    )
    held = peak <= 300 * MB and later < 150 * MB
    raw = {"rss_before": before, "rss_peak": peak, "rss_later": later, "statuses": statuses}
    return Result(text, held=held, raw=raw)


HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def half_sent(url: str, n: int) -> list[socket.socket]:
    """``n`` connections that each sent part of a request's headers, and nothing more."""
    port = int(url.rsplit(":", 1)[1])
    sockets = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(HALF_REQUEST)
            s.setblocking(False)
            sockets.append(s)
    except BaseException:
        for s in sockets:
            s.close()
        raise
    return sockets


def wait_closed(sockets: list[socket.socket], seconds: float) -> tuple[float | None, int]:
    """Seconds until the server closed every one of ``sockets`` (None if not within
    ``seconds``), and how many it left open."""
    selector = selectors.DefaultSelector()  # epoll: select() stops at 1,024 descriptors
    for s in sockets:
        selector.register(s, selectors.EVENT_READ)
    t0, left = time.monotonic(), len(sockets)
    try:
        while left and time.monotonic() - t0 < seconds:
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(BlockingIOError):
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        data = b""  # reset: closed too
                    if not data:
                        selector.unregister(sock)
                        left -= 1
        return (time.monotonic() - t0 if not left else None), left
    finally:
        selector.close()


def slow_clients(run: Chaos) -> Result:
    """Half-sent requests: how soon they are closed; /healthz under a low file limit."""
    s = run.sizes
    n = s.slow_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < n + 256:
        raise NotRun(f"this driver may open {hard} files, {n + 256} needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 256), hard))
    header = f"{s.slow_header_timeout:g}"
    with host(run, "slow-clients", "--no-access-log", "--header-timeout", header) as h:
        t0 = time.monotonic()
        sockets = half_sent(h.url, n)
        opened = time.monotonic() - t0
        try:
            took, left = wait_closed(sockets, 40)
        finally:
            for sock in sockets:
                sock.close()
    closed = (
        f"all closed {took + opened:.1f} s after the first was opened"
        if took is not None
        else f"**{left} still open** after 40 s"
    )
    with host(run, "slow-clients-nofile", "--no-access-log", "--header-timeout", "60",
              nofile=s.slow_nofile) as h:  # fmt: skip
        sockets = half_sent(h.url, n)
        try:
            probes = [_probe(h.url) for _ in range(s.slow_probes)]
        finally:
            for sock in sockets:
                sock.close()
    answered = [t for t in probes if t is not None]
    text = (
        f"{n:,} half-sent connections, `--header-timeout {header}`: {closed} (opening took "
        f"{opened:.1f} s). Under `ulimit -n {s.slow_nofile}` with {n:,} held: /healthz answered "
        f"{len(answered)} of {len(probes)} probes, {ms(median(answered))} median, "
        f"{ms(max(answered, default=float('nan')))} max"
    )
    held = took is not None and took + opened <= s.slow_header_timeout + 1
    held = held and len(answered) == len(probes)
    held = held and max(answered, default=0) <= 1
    raw = {"opened_s": opened, "closed_s": took, "left": left, "healthz_s": probes}
    return Result(text, held=held, raw=raw)


def _probe(url: str) -> float | None:
    """Seconds /healthz took to answer 200, or None."""
    t0 = time.monotonic()
    try:
        ok = httpx.get(url + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return None
    return time.monotonic() - t0 if ok else None


def host_kill9(run: Chaos) -> Result:
    """kill -9 of a host with services whose load() is slow, then a restart on its home."""
    s = run.sizes
    home = run.workdir / "home-kill9"
    env = f"LOAD_SECONDS={s.kill9_load_seconds:g}"
    with host(run, "kill9", home=home) as h:
        for i in range(s.kill9_services):
            h.deploy("Sleepy", f"slow{i}", "--env", env)
        before = workers_under(home)
        h.kill9()
        gone = poll(lambda: not workers_under(home), 30)
        left = workers_under(home)
    for pid in left:  # the fault itself: do not let them outlive the scenario
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with host(run, "kill9-restarted", home=home) as h:
        ready = poll(lambda: httpx.get(h.url + "/readyz", timeout=2).status_code == 200, 120)
        services = httpx.get(h.url + "/readyz", timeout=10).json().get("services", {})
        back = sum(int(v.get("ready_replicas", 0)) >= 1 for v in services.values())
        after = workers_under(home)
    serial = s.kill9_services * s.kill9_load_seconds
    when_ready = f"{ms(h.healthz_seconds + ready)}" if ready is not None else "**not in 120 s**"
    gone_text = (
        f"gone within {ms(gone)}" if gone is not None else f"**{len(left)} left after 30 s**"
    )
    duplicates = "no duplicates" if len(after) == len(before) else "**duplicates**"
    text = (
        f"{len(before)} workers: {gone_text}; the restarted host answered /healthz "
        f"{ms(h.healthz_seconds)} after it started, /readyz 200 after {when_ready}, with {back} "
        f"of {s.kill9_services} services restored in parallel (each load() "
        f"{s.kill9_load_seconds:g} s; one after another: {serial:g} s); {len(after)} workers, "
        f"{duplicates}"
    )
    parallel = ready is not None and ready < serial  # from /healthz answering to ready
    held = parallel and not left and back == s.kill9_services and len(after) == len(before)
    raw = {
        "workers": len(before),
        "gone_s": gone,
        "left": len(left),
        "healthz_s": h.healthz_seconds,
        "ready_s": ready,
        "restored": back,
        "workers_after": len(after),
    }
    return Result(text, held=held, raw=raw)


def poison(run: Chaos) -> Result:
    """One caller repeats a request that crashes its worker; others call meanwhile."""
    s = run.sizes
    with host(run, "poison", "--no-access-log") as h:
        h.deploy("Busy", "busy", "--replicas", "2")
        url = h.url + "/busy/word"
        with Load(url, {"word": "live"}, s.poison_callers, s.poison_seconds) as others:
            with Load(url, {"word": "dead"}, 1, s.poison_seconds) as poisoner:
                poisoner.wait()
            others.wait()
        crashes = h.metric('shipyard_worker_restarts_total{service="busy"}')
    failed = others.failed()
    # once the request is refused, the others must be served: judged on the run's second half
    middle = min((c.start for c in others.calls), default=0.0) + s.poison_seconds / 2
    late, late_failed = others.count(middle), len(others.failed(middle))
    text = (
        f"2 replicas, {s.poison_callers} callers, 1 caller repeating a crashing request for "
        f"{s.poison_seconds:g} s: {share(len(failed), len(others.calls))} of the other callers' "
        f"requests failed ({kinds(failed)}), {share(late_failed, late)} in the second half; "
        f"{crashes:.0f} worker crashes; the poison caller got {kinds(poisoner.calls)}"
    )
    refused = any(c.error == "poison_request" for c in failed)
    held = not refused and crashes <= 2 and late_failed == 0
    raw = {"calls": len(others.calls), "failed": len(failed), "crashes": crashes}
    return Result(text, held=held, raw=raw)


def overrun(run: Chaos) -> Result:
    """One sync call, then one async call, overrun their timeout beside a steady load."""
    s = run.sizes
    with host(run, "overrun", "--no-access-log") as h:
        h.deploy("Overrun", "overrun", "--replicas", "2")
        seconds = 4 * (TIMEOUT_S + s.overrun_settle) + 2
        half = max(1, s.overrun_callers // 2)
        sync = Load(h.url + "/overrun/echo_sync", {"x": 1}, half, seconds)
        async_ = Load(h.url + "/overrun/echo_async", {"x": 1}, half, seconds)
        windows: dict[str, tuple[float, float, Call]] = {}
        with sync, async_:
            time.sleep(1)
            for kind in ("sync", "async"):
                t0 = time.monotonic()
                with httpx.Client(timeout=60) as client:
                    answer = call(
                        client,
                        f"{h.url}/overrun/stall_{kind}",
                        b'{"seconds": %g}' % s.overrun_stall,
                    )
                time.sleep(s.overrun_settle)  # the neighbours' calls in flight finish or fail
                windows[kind] = (t0, time.monotonic(), answer)
                progress(f"  {kind} overrun answered {answer.status} {answer.error}")
    parts, held, raw = [], True, {}
    for kind, (t0, t1, answer) in windows.items():
        failed = sync.failed(t0, t1) + async_.failed(t0, t1)
        total = sync.count(t0, t1) + async_.count(t0, t1)
        parts.append(
            f"{kind} call: answered {answer.status} {answer.error} after {ms(answer.seconds)}, "
            f"neighbours failed {share(len(failed), total)} ({kinds(failed)})"
        )
        held = held and answer.status == 504 and not failed
        raw[kind] = {"status": answer.status, "failed": len(failed), "calls": total}
    text = (
        f"2 replicas, {2 * half} callers (sync and async endpoints), timeout {TIMEOUT_S} s: "
        + "; ".join(parts)
    )
    return Result(text, held=held, raw=raw)


class Redis:
    """A private redis-server (no persistence) on a free 127.0.0.1 port; restartable."""

    def __init__(self, directory: Path) -> None:
        self.port, self.directory = free_port(), directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", str(self.directory)]  # fmt: skip
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if poll(self._pong, 60, every=0.05) is None:
            raise BenchFailed(f"redis-server on port {self.port} did not answer PING in 60 s")

    def _pong(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def redis_region(run: Chaos) -> Result:
    """Reads of a replicated cache while one region is killed and restarted empty."""
    if shutil.which("redis-server") is None:
        raise NotRun("redis-server is not on PATH (apt-get install redis-server)")
    sys.path.insert(0, str(REPO / "src"))  # the cache of this checkout, like the hosts
    from shipyard import cache

    s = run.sizes
    saved = {k: v for k, v in os.environ.items() if k.startswith("SHIPYARD_")}
    regions = [Redis(run.workdir / f"redis-{i}") for i in range(2)]
    try:
        for name in saved:
            del os.environ[name]
        os.environ["SHIPYARD_HOME"] = str(run.workdir / "home-redis")
        for region in regions:
            region.start()
        url = ",".join(r.url for r in regions)
        rows = {f"k{i}": [0, i] for i in range(s.redis_keys)}
        with cache.writer("chaos", url=url) as w:
            w.put_many(rows)
        reads = _reads_during(cache.reader("chaos", url=url, strict=True), rows, regions[0], s)
        failed, total = reads
        attempts, error = _publish_after(cache, url)
    finally:
        for region in regions:
            region.kill()
        for name in [k for k in os.environ if k.startswith("SHIPYARD_")]:
            del os.environ[name]
        os.environ.update(saved)
    published = f"succeeded at attempt {attempts}" if error is None else f"**failed**: {error}"
    text = (
        f"2 regions, {s.redis_keys:,} keys, one reader for {s.redis_seconds:g} s; the preferred "
        f"region killed -9 at {s.redis_seconds / 4:g} s and restarted empty at "
        f"{s.redis_seconds / 2:g} s: {share(failed, total)} reads failed; the first publish "
        f"after the restart {published}"
    )
    held = failed == 0 and attempts == 1 and error is None
    return Result(text, held=held, raw={"reads": total, "failed": failed, "attempts": attempts})


def _reads_during(reader: Any, rows: dict[str, Any], victim: Redis, s: Sizes) -> tuple[int, int]:
    """(failed, total) reads of random keys while ``victim`` is killed, then restarted."""
    keys = list(rows)
    failed = total = 0
    t0 = time.monotonic()
    killed = restarted = False
    while time.monotonic() - t0 < s.redis_seconds and total < MAX_CALLS:
        elapsed = time.monotonic() - t0
        if not killed and elapsed >= s.redis_seconds / 4:
            victim.kill()
            killed = True
            progress(f"  region {victim.port} killed after {total:,} reads")
        if not restarted and elapsed >= s.redis_seconds / 2:
            victim.start()
            restarted = True
            progress(f"  region {victim.port} restarted empty after {total:,} reads")
        key = keys[total % len(keys)]
        total += 1
        try:
            if reader.get(key) != rows[key]:
                failed += 1
        except Exception:  # noqa: BLE001 - any error is a failed read, counted
            failed += 1
    return failed, total


def _publish_after(cache: Any, url: str) -> tuple[int, str | None]:
    """Publish a new version, retrying up to 3 times: (attempts, the last error or None)."""
    error = None
    for attempt in range(1, 4):
        try:
            with cache.writer("chaos", url=url) as w:
                w.put_many({"k0": [1, 0]})
            return attempt, None
        except cache.CacheError as exc:
            error = str(exc).splitlines()[0]
    return 3, error


def memory_limit(run: Chaos) -> Result:
    """A replica that allocates past ``--memory``, ``memory_rounds`` times."""
    s = run.sizes
    with host(run, "memory") as h:
        h.deploy("Hungry", "hungry", "--memory", f"{s.memory_limit_mb}M")
        answers: list[str] = []  # "STATUS TYPE", with " (names the limit)" when it does
        replaced: list[float] = []
        limit = f"memory limit of {s.memory_limit_mb} MB"
        for _ in range(s.memory_rounds):
            # a body of its own each time: the same one twice is a poison request, refused
            over = h.post("/hungry/eat", {"mb": s.memory_eat_mb + len(answers)}, timeout=60)
            kind = over.json()["error"]["type"] if over.status_code != 200 else ""
            answers.append(
                f"{over.status_code} {kind}" + " (names the limit)" * (limit in over.text)
            )
            took = poll(lambda: h.post("/hungry/eat", {"mb": 1}).status_code == 200, 60, 0.05)
            replaced.append(took if took is not None else float("inf"))
            progress(f"  {answers[-1]}; replaced in {ms(replaced[-1])}")
        kills = h.metric('shipyard_replica_oom_kills_total{service="hungry"}')
        restarts = h.metric('shipyard_worker_restarts_total{service="hungry"}')
        events = h.admin("/api/v1/deployments/hungry").get("events", [])
        said = sum("replica_memory_exceeded" in json.dumps(e) for e in events)
        found = re.search(ENFORCED, h.server.tail(400))
    enforced = found.group(1).strip() if found else "?"
    crashed = answers.count("503 worker_crashed (names the limit)")
    text = (
        f"`--memory {s.memory_limit_mb}M`, a call allocating {s.memory_eat_mb}+ MB, "
        f"{times(s.memory_rounds, 'time')} (enforced by {enforced}): {crashed} of {len(answers)} "
        f"answered 503 `worker_crashed` naming the limit; {restarts:.0f} restarts, "
        f"{kills:.0f} memory kills counted, "
        f"{said} `replica_memory_exceeded` events; replaced and ready in "
        f"{ms(median(replaced))} median, {ms(max(replaced, default=0))} max (the restart "
        "backoff doubles with each crash in a row)"
    )
    rounds = s.memory_rounds
    held = crashed == rounds and kills == rounds and all(t < 60 for t in replaced)
    raw = {"answers": answers, "kills": kills, "replaced_s": replaced}
    return Result(text, held=held, raw=raw)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Scenario:
    """One fault: how it is produced, what shipyard promises, which tests keep it."""

    run: Callable[[Chaos], Result]
    fault: str
    promise: str
    tests: str  # globs under tests/, the first of which that matches names the test


SCENARIOS = {
    "replica_kill": Scenario(
        replica_kill,
        "a replica killed (`kill -9`) under load, every few seconds",
        "only the requests in flight on it fail (503 `worker_crashed`); the others are served "
        "by the other replicas; it is restarted and ready again within seconds",
        "chaos/test_*replica_kill*.py serve/test_host.py",
    ),
    "overload": Scenario(
        overload,
        "10x the capacity offered (`--max-in-flight` per replica)",
        "callers past the limit get 503 with `Retry-After` at once; the host's memory stays flat",
        "chaos/test_*overload*.py serve/test_host_limits.py",
    ),
    "body_flood": Scenario(
        body_flood,
        "40 concurrent 15 MB bodies",
        "bodies are admitted before they are buffered: the host's RSS stays ≤ 300 MB and is "
        "back under 150 MB within 10 s",
        "chaos/test_*bod*.py",
    ),
    "slow_clients": Scenario(
        slow_clients,
        "2,000 half-sent requests; the same under `ulimit -n 512`",
        "closed within 11 s (`--header-timeout` 10 s); `/healthz` answers within 1 s while "
        "they hold every connection slot",
        "chaos/test_slow_clients.py",
    ),
    "host_kill9": Scenario(
        host_kill9,
        "`kill -9` of the host",
        "its workers die with it; the restarted host answers `/healthz` at once, brings "
        "every deployment back in parallel, and starts no duplicates",
        "chaos/test_host_kill9.py",
    ),
    "poison": Scenario(
        poison,
        "one caller repeating a request that crashes its worker",
        "after 2 crashes within 60 s the request is refused (503 `poison_request`) for 10 "
        "minutes without reaching a worker; other callers are served",
        "chaos/test_poison_requests.py",
    ),
    "overrun": Scenario(
        overrun,
        "a sync call and an async call that overrun their `timeout`",
        "the overrunning call gets 504; the calls beside it on the same worker do not fail",
        "chaos/test_*overrun*.py chaos/test_*timeout*.py serve/test_host.py",
    ),
    "redis_region": Scenario(
        redis_region,
        "a Redis region killed mid-read and restarted empty",
        "reads go on from the other region without failing; the next publish succeeds the "
        "first time",
        "chaos/test_redis_region_restart.py",
    ),
    "memory_limit": Scenario(
        memory_limit,
        "a replica allocating past `--memory`",
        "it is killed and restarted; its call gets 503 naming the limit; the deployment's "
        "events and `shipyard_replica_oom_kills_total` say so",
        "chaos/test_replica_memory.py",
    ),
}


def keeper(globs: str) -> str:
    """The test file that keeps a promise: the first glob under tests/ that matches."""
    for pattern in globs.split():
        found = sorted((REPO / "tests").glob(pattern))
        if found:
            return f"`tests/{found[0].relative_to(REPO / 'tests')}`"
    return "none yet"


def cell(name: str, run: Chaos) -> str:
    """The measured cell of one scenario."""
    result = run.results.get(name)
    if result is None:
        return "not run: not selected (`--only`)"
    verdict = "" if result.held is not False else "**not held:** "
    return verdict + result.measured.replace("|", "\\|").replace("\n", " ")


def section(run: Chaos, command: str) -> str:
    m = run.machine
    size = "`--quick` sizes, a smoke run" if run.args.quick else "full size"
    column = "quick" if run.args.quick else "full size"
    lines = [
        f"Measured {run.when} with `{command}` (from the repository root), at {size}, on "
        f"{m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}, Python "
        f"{m['python']}; 1-minute load average {m['load_start']} at the start, "
        f"{m.get('load_end', '?')} at the end. Each host is `shipyard serve` on 127.0.0.1 in a "
        "fresh `SHIPYARD_HOME`; the load is closed-loop callers in the driver.",
        "",
        f"| fault | what shipyard promises | measured ({column}) | the test that keeps it |",
        "|---|---|---|---|",
    ]
    for name, scenario in SCENARIOS.items():
        lines.append(
            f"| {scenario.fault} | {scenario.promise} | {cell(name, run)} "
            f"| {keeper(scenario.tests)} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run (< 1 min)")
    parser.add_argument("--write", action="store_true", help="update README.md's chaos table")
    parser.add_argument("--json", type=Path, help="write every raw measurement here")
    parser.add_argument("--keep", action="store_true", help="keep bench/.work/chaos-* and logs")
    parser.add_argument("--no-pin", action="store_true", help="do not pin hosts and load")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(SCENARIOS)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {','.join(SCENARIOS)}")
    return args


def shown_command(argv: list[str]) -> str:
    """How this run was started, for the table, without the options that only say where its
    output goes (``--json PATH``, ``--keep``)."""
    words, skip = [], False
    for word in argv:
        if skip or word == "--keep" or word.startswith("--json="):
            skip = False
            continue
        skip = word == "--json"
        if not skip:
            words.append(word)
    return shlex.join([".venv/bin/python", "bench/chaos.py", *words])


def leaked(run: Chaos) -> list[int]:
    """Worker processes of this run's homes still alive: killed here, and returned."""
    found = workers_under(run.workdir)
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(130))
    described = machine(REPO)
    described["load_start"] = f"{os.getloadavg()[0]:.2f}"
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    if pin:
        os.sched_setaffinity(0, {cpus[1]})  # the driver and its callers; hosts on cpus[0]
    (BENCH / ".work").mkdir(exist_ok=True)
    run = Chaos(
        args=args,
        wrk="",
        workdir=Path(tempfile.mkdtemp(prefix="chaos-", dir=BENCH / ".work")),
        pin_load=[],
        pin_server=["taskset", "-c", str(cpus[0])] if pin else [],
        cpus=cpus,
        when=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=described,
        sizes=QUICK if args.quick else FULL,
    )
    run.code = run.workdir / "code" / "services.py"
    run.code.parent.mkdir()
    run.code.write_text(SERVICES)
    progress(f"work directory {run.workdir}; scenarios {args.parts}")
    try:
        for name in args.parts:
            progress(f"{name}:")
            t0 = time.monotonic()
            try:
                run.results[name] = SCENARIOS[name].run(run)
            except NotRun as exc:
                run.results[name] = Result(f"not run: {exc}")
            except Exception as exc:  # noqa: BLE001 - a failed scenario is reported, the rest run
                run.fail(name, exc)
                run.results[name] = Result(f"failed: {str(exc).splitlines()[0][:200]}", False)
            progress(f"  {name} ({time.monotonic() - t0:.0f} s): {run.results[name].measured}")
    except KeyboardInterrupt:
        progress(f"interrupted; hosts stopped; logs in {run.workdir}")
        return 130
    finally:
        left = leaked(run)
        if left:
            run.errors["leaked"] = f"worker processes left running (killed now): {left}"
            progress(f"LEAKED workers {left}: killed")
    described["load_end"] = f"{os.getloadavg()[0]:.2f}"
    text = section(run, shown_command(argv if argv is not None else sys.argv[1:]))
    print(text)
    if args.json:
        raw = {k: {"measured": v.measured, "held": v.held, **v.raw} for k, v in run.results.items()}
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    if args.write:
        write_section(README, BEGIN, END, text, "")
        progress(f"wrote the chaos table of {README}")
    if run.errors:
        progress(f"failures: {sorted(run.errors)}; logs in {run.workdir}")
        return 1
    if not args.keep:
        shutil.rmtree(run.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
