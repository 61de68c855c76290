"""Servers under load: the plumbing bench/serve.py, bench/cache.py and bench/gateway.py share.

- :class:`Server` starts one server process (pinned, logging to a file), waits for it to be
  ready, reads the CPU of its process tree from /proc, samples its peak RSS/PSS, stops it.
- :class:`Bench` holds one run's options and results: the servers it starts
  (:meth:`Bench.server`), wrk runs with a Lua script that prints a ``BENCH_JSON`` line
  (:meth:`Bench.wrk_run`, :meth:`Bench.load`), failures (:meth:`Bench.fail`).
- :func:`start` and :func:`finish` are the beginning and the end of every script's ``main``:
  machine description, CPU pinning, work directory, wrk; the section printed, written to
  BENCHMARKS.md with ``--write``, the work directory removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
from flows import HEADER
from measure import MB, machine, run_text, tree_cpu, tree_memory, tree_pids, write_section

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = Path(sys.executable)
POST_LUA = BENCH / "serve" / "post.lua"
SETTLE = 1.0  # seconds between wrk runs
_T0 = time.perf_counter()


def progress(message: str) -> None:
    """One progress line on stderr (stdout is kept for the table)."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


class BenchFailed(Exception):
    """A server could not be started or measured; the message says why and where the logs are."""


# --------------------------------------------------------------------------- tools


def ensure_apt(command: str, package: str | None = None) -> str:
    """The path of ``command``, installed with apt-get (from ``package``) if missing."""
    package = package or command
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchFailed(f"{command} is not installed; run: sudo apt-get install -y {package}")
    progress(f"installing {package}: apt-get update && apt-get install -y {package}")
    run_text(["apt-get", "update", "-qq"], timeout=600)
    run_text(["apt-get", "install", "-y", "-qq", package], timeout=600)
    found = shutil.which(command)
    if not found:
        raise BenchFailed(f"apt-get installed {package}, but {command} is not on PATH")
    return found


def ensure_wrk() -> str:
    """The path of wrk, installed from Debian's packages if missing."""
    return ensure_apt("wrk")


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=30)
    first = (done.stdout + done.stderr).splitlines()[0]
    return first.split(" Copyright")[0].strip()


def ensure_venv(
    venv: Path, check: str, want: str, requirements: Sequence[str], timeout: float
) -> Path:
    """The python of ``venv``, where ``python -c check`` prints ``want``.

    Made with the driver's python and ``pip install requirements`` when it does not.
    """
    python = venv / "bin" / "python"
    if python.exists():
        with contextlib.suppress(RuntimeError):
            if run_text([str(python), "-c", check], timeout=120).strip() == want:
                return python
    if not python.exists():
        progress(f"creating {venv}")
        run_text([str(PYTHON), "-m", "venv", str(venv)], timeout=300)
    progress(f"installing {' '.join(requirements)} into {venv}")
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run_text([*pip, *requirements], timeout=timeout)
    got = run_text([str(python), "-c", check], timeout=120).strip()
    if got != want:
        raise BenchFailed(f"{venv}: wanted {want}, got {got}")
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(drop: tuple[str, ...], **extra: str) -> dict[str, str]:
    """This process's environment without the variables starting with ``drop``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def bench_json(text: str) -> dict[str, object] | None:
    """The object on the first line of ``text`` that starts with ``BENCH_JSON``, if any."""
    for line in text.splitlines():
        if line.startswith("BENCH_JSON "):
            return dict(json.loads(line.removeprefix("BENCH_JSON ")))
    return None


# --------------------------------------------------------------------------- servers


class Server:
    """One server under test: its process tree, sampled for memory while it runs."""

    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None
        self.known: dict[int, psutil.Process] = {}  # every process seen in the tree
        self.peak_rss = self.peak_pss = self.max_procs = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C on the terminal reaches the driver only
            )
        self._sampler = threading.Thread(target=self._sample, name=f"sample-{self.name}")
        self._sampler.daemon = True
        self._sampler.start()

    def pids(self) -> list[int]:
        """The tree now; remembers every process, so that stop() can end even orphans."""
        assert self.popen is not None
        pids = tree_pids(self.popen.pid)
        with self._lock:
            for pid in pids:
                if pid not in self.known:
                    with contextlib.suppress(psutil.Error):
                        self.known[pid] = psutil.Process(pid)
        return pids

    def cpu(self) -> float:
        return tree_cpu(self.pids())

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            if self.popen is None or self.popen.poll() is not None:
                return
            pids = self.pids()
            rss, pss = tree_memory(pids)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.max_procs = max(self.max_procs, len(pids))

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchFailed(
                    f"{self.name} exited while starting; log: {self.log}\n{self.tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if ready():
                    return
            time.sleep(0.1)
        raise BenchFailed(
            f"{self.name} not ready after {timeout:g} s; log: {self.log}\n{self.tail()}"
        )

    def tail(self, lines: int = 15) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the top process, then SIGKILL whatever of its tree is left."""
        self._stop.set()
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.pids()
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                progress(f"  {self.name} did not stop within {grace:g} s: SIGKILL")
        with self._lock:
            left = [p for p in self.known.values() if p.is_running()]
        for proc in left:  # only processes of this server's tree; is_running checks identity
            with contextlib.suppress(psutil.Error):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        if self._sampler is not None:
            self._sampler.join(5)


# --------------------------------------------------------------------------- load


@dataclass
class Wrk:
    """What one wrk run printed on its ``BENCH_JSON`` line, in requests, seconds and ms."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]  # the non-zero ones
    raw: dict[str, object]

    @classmethod
    def parse(cls, raw: dict[str, object]) -> Wrk:
        latency, errors = raw["latency_us"], raw["errors"]
        assert isinstance(latency, dict) and isinstance(errors, dict)
        return cls(
            requests=int(str(raw["requests"])),
            seconds=int(str(raw["duration_us"])) / 1e6,
            p50_ms=latency["p50"] / 1000,
            p90_ms=latency["p90"] / 1000,
            p99_ms=latency["p99"] / 1000,
            mean_ms=latency["mean"] / 1000,
            max_ms=latency["max"] / 1000,
            errors={k: int(v) for k, v in errors.items() if v},
            raw=raw,
        )


@contextlib.contextmanager
def background(work: Callable[[], None] | None) -> Iterator[None]:
    """Run ``work()`` in a thread for the duration of the block (nothing if it is None)."""
    if work is None:
        yield
        return
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(30)


@dataclass
class Bench:
    """Options and shared state of one benchmark run: its servers, wrk runs and failures."""

    args: argparse.Namespace
    wrk: str
    workdir: Path
    pin_load: list[str]
    pin_server: list[str]
    cpus: list[int] = field(default_factory=list)  # every CPU this run may use
    when: str = ""  # when it started, for the section
    servers_cwd: Path = BENCH
    servers: dict[str, dict[str, float]] = field(default_factory=dict)  # memory per server
    errors: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)

    def wrk_run(
        self,
        url: str,
        connections: int,
        seconds: float,
        script_args: Sequence[str],
        script: Path = POST_LUA,
    ) -> dict[str, object]:
        """One wrk run (1 thread, pinned like the load), then SETTLE seconds of quiet."""
        argv = [
            *self.pin_load, self.wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s",
            "--latency", "--timeout", "10s", "-s", str(script), url, "--", *script_args,
        ]  # fmt: skip
        out = run_text(argv, timeout=seconds + 60)
        # wrk closes its connections at the deadline, with requests still queued in the
        # server; let them finish, so the next run does not start against a backlog
        time.sleep(SETTLE)
        raw = bench_json(out)
        if raw is None:
            raise BenchFailed(f"wrk printed no BENCH_JSON line:\n{out[-2000:]}")
        return raw

    def load(
        self,
        server: Server,
        url: str,
        connections: int,
        script_args: Sequence[str],
        *,
        seconds: float | None = None,
        script: Path = POST_LUA,
        during: Callable[[], None] | None = None,
    ) -> tuple[Wrk, float]:
        """A warm-up with post.lua, then one measured run of ``script`` (``during`` runs in a
        thread meanwhile): what wrk saw, and the server tree's CPU-seconds around it."""
        if self.args.warmup > 0:
            self.wrk_run(url, connections, self.args.warmup, script_args)
        cpu0 = server.cpu()
        with background(during):
            raw = self.wrk_run(url, connections, seconds or self.args.duration, script_args, script)
        return Wrk.parse(raw), server.cpu() - cpu0

    def wrk_errors(self, key: str, result: Wrk, server: Server) -> None:
        """Record wrk's errors of one run as a failure named ``key``."""
        if result.errors:
            self.errors[key] = (
                f"wrk saw errors {result.errors} in {result.requests} requests; log: {server.log}"
            )

    @contextlib.contextmanager
    def server(
        self, name: str, argv: list[str], *, env: dict[str, str], pin: list[str] | None = None
    ) -> Iterator[Server]:
        """``argv`` pinned (like the servers, or to ``pin``), stopped when the block ends."""
        log_dir = self.workdir / "logs"
        log_dir.mkdir(exist_ok=True)
        pinned = self.pin_server if pin is None else pin
        server = Server(
            name, [*pinned, *argv], env=env, cwd=self.servers_cwd, log=log_dir / f"{name}.log"
        )
        progress(f"{name}: {shlex.join(server.argv)}")
        server.start()
        try:
            yield server
        finally:
            server.stop()
            self.servers[name] = {
                "peak_rss": server.peak_rss,
                "peak_pss": server.peak_pss,
                "max_procs": server.max_procs,
            }
            progress(
                f"  {name} stopped; peak RSS {server.peak_rss / MB:.0f} MB, "
                f"PSS {server.peak_pss / MB:.0f} MB, {server.max_procs} processes"
            )

    def fail(self, name: str, exc: BaseException) -> None:
        self.errors[name] = str(exc)
        progress(f"  {name}: FAILED: {exc}")


# --------------------------------------------------------------------------- main


B = TypeVar("B", bound=Bench)


def add_options(
    parser: argparse.ArgumentParser, parts: Sequence[str], *, only_help: str | None = None
) -> None:
    """``--only``, ``--duration``, ``--warmup`` and ``--connections``: every script has them."""
    parser.add_argument(
        "--only", default=",".join(parts), help=only_help or f"of {','.join(parts)}"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before each")
    parser.add_argument("--connections", default="1,32", help="wrk connections, comma-separated")


def add_output_options(parser: argparse.ArgumentParser, *, no_pin: str, keep: str) -> None:
    """``--no-pin``, ``--write``, ``--json`` and ``--keep``."""
    parser.add_argument("--no-pin", action="store_true", help=no_pin)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--json", type=Path, help="write every raw measurement here")
    parser.add_argument("--keep", action="store_true", help=keep)


def check_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, parts: Sequence[str]
) -> None:
    """Turn ``--only`` into ``args.parts`` and ``--connections`` into ints; check the ranges."""
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(parts)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {','.join(parts)}")
    args.connections = sorted({int(c) for c in args.connections.split(",")})
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 600:
        parser.error("--duration must be in (0, 600] and --warmup in [0, 600]")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def start(cls: type[B], args: argparse.Namespace, prefix: str, *, wrk: bool = True) -> B:
    """SIGTERM/SIGHUP as Ctrl-C, the machine described, the driver pinned with the load (CPU
    1; servers go to CPU 0) unless ``--no-pin``, a fresh bench/.work/``prefix``-* directory,
    wrk found (or installed, if ``wrk``): a ``cls`` for this run."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    described = machine(REPO)  # before pinning: it counts the CPUs this process may use
    described["load_start"] = f"{os.getloadavg()[0]:.2f}"
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    if not args.no_pin and not pin:
        progress("only one CPU available: not pinning")
    if pin:
        os.sched_setaffinity(0, {cpus[1]})  # the driver and its sampler live with the load
    binary = ensure_wrk() if wrk else "wrk"
    (BENCH / ".work").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=BENCH / ".work"))
    bench = cls(
        args=args,
        wrk=binary,
        workdir=workdir,
        pin_load=["taskset", "-c", str(cpus[1])] if pin else [],
        pin_server=["taskset", "-c", str(cpus[0])] if pin else [],
        cpus=cpus,
        when=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=described,
    )
    if wrk:
        bench.versions["wrk"] = wrk_version(binary).removeprefix("wrk ")
    return bench


def command(script: str, argv: list[str] | None, described: dict[str, str]) -> str:
    """How this run was started, for the section; notes the load average at the end."""
    described["load_end"] = f"{os.getloadavg()[0]:.2f}"
    words = argv if argv is not None else sys.argv[1:]
    return f".venv/bin/python bench/{script}.py {shlex.join(words)}".strip()


def finish(
    args: argparse.Namespace,
    name: str,
    text: str,
    raw: Mapping[str, object],
    errors: dict[str, str],
    workdir: Path,
) -> int:
    """Print ``text``; write ``raw`` to ``--json`` and ``text`` as the ``name`` section of
    BENCHMARKS.md (``--write``); remove ``workdir`` unless failed or ``--keep``."""
    print(text)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2))
    if args.write:
        start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
        write_section(REPO / "BENCHMARKS.md", start, end, text, HEADER)
        progress(f"wrote the {name} section of {REPO / 'BENCHMARKS.md'}")
    if errors:
        progress(f"failures: {sorted(errors)}; logs in {workdir}")
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------- report


def yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def failed_lines(errors: dict[str, str]) -> list[str]:
    """The ``Failed:`` lines of a section (none if nothing failed)."""
    if not errors:
        return []
    return ["", "Failed:", "", *(f"- {k}: {v.splitlines()[0][:300]}" for k, v in errors.items())]


def machine_line(m: dict[str, str], tail: str = "") -> str:
    """The ``- Machine:`` line; ``tail`` goes between the Python version and the load average."""
    return (
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}, "
        f"Python {m['python']}{tail}; 1-minute load average {m.get('load_start', '?')} at the "
        f"start, {m.get('load_end', '?')} at the end"
    )
