"""Precompute-cache benchmark: shipyard's reader against raw redis-py, LMDB in-process, 1M-key
bulk loads, and ``/ranker/home`` through the host - in one run, on this machine.

    .venv/bin/python bench/cache.py                  # everything (~6 min on 2 cores), to stdout
    .venv/bin/python bench/cache.py --write          # ... and updates BENCHMARKS.md
    .venv/bin/python bench/cache.py --only lmdb,redis --keys 100000 --seconds 1   # quick

Parts (``--only``):

- bulk: ``--keys`` (1,000,000) keys, each a list of 50 ints, written through
  ``cache.writer(...).put_many`` + ``commit`` into LMDB and into Redis, each by a process of
  its own (bench/cache/load.py): wall time, CPU and peak RSS of that process; for Redis also
  the server's RSS and ``used_memory`` after the load.
- redis: raw redis-py ``GET`` and ``MGET`` of 50 keys against shipyard's reader ``get`` and
  ``get_many`` (no LRU), on the same server and the same stored keys (the reader's data keys,
  read raw). Rounds alternate the cases, so drift hits all alike.
- lmdb: the LMDB reader in this process, ``get`` over all keys and over 5,000 hot keys, with
  and without the reader's LRU (10,000 entries), ``get_many`` of 50; raw py-lmdb ``txn.get``
  on the same environment as the floor.
- ranker: examples/movie_ranker's flow on small synthetic data in a temporary SHIPYARD_HOME,
  ``service.py:Ranker`` deployed on a host, then wrk posting
  ``{"profile_id": "u00042", "limit": 10}`` to ``/ranker/home`` (bench/serve/post.lua).

The read parts use the namespaces the bulk part loaded (they load them, unreported, when bulk
is not selected). Latency is timed around each call with ``time.perf_counter_ns``; ops/s is
calls over the time of the timed loop. Pinning as in bench/serve.py: the driver and wrk on CPU
1, redis-server and the host on CPU 0. The redis-server is the machine's ``redis-server``
(apt-get installs it if missing) on a free 127.0.0.1 port, no persistence, and stopped at
the end like every server here, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import random
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import lmdb
import msgpack
import numpy as np
import redis
from flows import git_state
from measure import MB, run_measured, run_text, tree_memory
from servers import (
    BENCH,
    PYTHON,
    REPO,
    BenchFailed,
    Server,
    add_output_options,
    bench_json,
    check_options,
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

from serve import Config as ServeConfig
from serve import ms, shipyard_host
from shipyard import cache

LOADER = BENCH / "cache" / "load.py"
RANKER = REPO / "examples" / "movie_ranker"
PARTS = ("bulk", "lmdb", "redis", "ranker")
NAMESPACE = "bench-bulk"
HOME_BODY = '{"profile_id": "u00042", "limit": 10}'
MGET = 50  # keys per get_many / MGET
HOT = 5_000  # keys in the hot set of the LRU cases
LRU = 10_000
GOAL_P99_US = 50.0
GOAL_REDIS_RATIO = 0.8
GOAL_LOAD_S = 60.0
FLOW_ARGS = (
    "--data", "synthetic", "--users", "2000", "--items", "500", "--factors", "8,16",
    "--iterations", "4", "--shards", "2", "--top", "20", "--max-workers", "2",
)  # fmt: skip


# --------------------------------------------------------------------------- measurements


@dataclass
class Reads:
    """One read case: every call timed, merged over rounds."""

    name: str
    part: str  # "redis" or "lmdb"
    what: str  # how it is shown in the table
    keys_per_call: int = 1
    calls: int = 0
    seconds: float = 0.0
    latencies_ns: list[int] = field(default_factory=list, repr=False)
    p50_us: float = 0.0
    p90_us: float = 0.0
    p99_us: float = 0.0
    p999_us: float = 0.0
    max_us: float = 0.0

    @property
    def ops(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def finish(self) -> None:
        values = np.asarray(self.latencies_ns, dtype=np.int64)
        p50, p90, p99, p999 = np.percentile(values, [50, 90, 99, 99.9]) / 1000
        self.p50_us, self.p90_us, self.p99_us = float(p50), float(p90), float(p99)
        self.p999_us, self.max_us = float(p999), float(values.max()) / 1000
        self.latencies_ns = []


def timed(call: Callable[[Any], object], args: list[Any], seconds: float, case: Reads) -> None:
    """Call ``call(arg)`` for ``args`` in turn (cycling) for ``seconds``, timing every call."""
    clock = time.perf_counter_ns
    record = case.latencies_ns.append
    n = len(args)
    i = 0
    start = clock()
    deadline = start + int(seconds * 1e9)
    now = start
    while now < deadline:
        arg = args[i % n]
        t0 = clock()
        call(arg)
        now = clock()
        record(now - t0)
        i += 1
    case.calls += i
    case.seconds += (now - start) / 1e9


def warm(call: Callable[[Any], object], args: list[Any], seconds: float) -> None:
    timed(call, args, seconds, Reads("warm-up", "", ""))


@dataclass
class Load:
    """One bulk load of ``keys`` keys into one backend."""

    backend: str
    keys: int
    wall: float
    cpu: float
    peak_rss: int
    maxrss: int
    put_s: float
    commit_s: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Config(ServeConfig):
    """Options and results of one run (its servers and wrk runs as bench/serve.py's)."""

    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    reads: dict[str, Reads] = field(default_factory=dict)
    loads: dict[str, Load] = field(default_factory=dict)
    flow: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    redis_port: int | None = None
    redis_server: Server | None = None
    loaded: dict[str, int] = field(default_factory=dict)  # backend -> keys in NAMESPACE

    def loaded_keys(self) -> int:
        return int(self.args.keys)

    def url(self, backend: str) -> str:
        if backend == "lmdb":
            return f"lmdb://{self.workdir / 'lmdb'}"
        return f"redis://127.0.0.1:{self.redis()}/0"

    def env(self, **extra: str) -> dict[str, str]:
        """The servers' environment; SHIPYARD_HOME is the driver's unless ``extra`` says."""
        return super().env(**{"SHIPYARD_HOME": str(self.workdir / "home-driver"), **extra})

    def case(self, name: str, part: str, what: str, keys_per_call: int = 1) -> Reads:
        if name not in self.reads:
            self.reads[name] = Reads(name, part, what, keys_per_call)
        return self.reads[name]

    # --- redis-server ----------------------------------------------------------------
    def redis(self) -> int:
        """The port of this run's redis-server, started on first use (stopped by the stack)."""
        if self.redis_port is not None:
            return self.redis_port
        binary = ensure_apt("redis-server")
        port = free_port()
        data = self.workdir / "redis"
        data.mkdir(exist_ok=True)
        argv = [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
            "--save", "", "--appendonly", "no", "--dir", str(data), "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip
        server = self.stack.enter_context(self.server("redis-server", argv, env=self.env()))
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

        def ready() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        server.wait_until(ready, 30)
        client.close()
        self.redis_port, self.redis_server = port, server
        self.versions["redis-server"] = run_text([binary, "--version"], timeout=30).split()[2]
        return port


# --------------------------------------------------------------------------- bulk


def bulk_load(cfg: Config, backend: str, *, report: bool) -> None:
    """Load ``--keys`` keys into ``backend`` with bench/cache/load.py in a process of its own."""
    keys = cfg.args.keys
    url = cfg.url(backend)
    logs = cfg.workdir / "logs"
    logs.mkdir(exist_ok=True)
    progress(f"bulk load of {keys:,} keys into {backend} ({url})")
    measured = run_measured(
        [*cfg.pin_load, str(PYTHON), str(LOADER), url, NAMESPACE, str(keys)],
        cwd=REPO,
        env=cfg.env(),
        timeout=cfg.args.load_timeout,
        log_stem=logs / f"load-{backend}",
    )
    if not measured.ok:
        why = "timed out" if measured.timed_out else f"exited {measured.returncode}"
        tail = measured.tail()
        last = tail.splitlines()[-1] if tail else ""
        raise BenchFailed(f"bulk load into {backend} {why}: {last}\n{tail}")
    assert measured.stdout is not None
    raw: dict[str, Any] | None = bench_json(measured.stdout.read_text())
    if raw is None:
        raise BenchFailed(f"bulk load into {backend} printed no BENCH_JSON line")
    cfg.loaded[backend] = keys
    if raw.get("workaround"):
        cfg.notes[f"bulk {backend}"] = raw["workaround"]
        progress(f"  note: {raw['workaround']}")
    if not report:
        return
    load = Load(
        backend=backend,
        keys=keys,
        wall=measured.wall,
        cpu=measured.cpu,
        peak_rss=measured.peak_rss,
        maxrss=int(raw["maxrss"]),
        put_s=float(raw["put_s"]),
        commit_s=float(raw["commit_s"]),
    )
    if backend == "lmdb":
        load.extra["file_bytes"] = float((cfg.workdir / "lmdb" / "data.mdb").stat().st_size)
    else:
        assert cfg.redis_server is not None
        info = redis.Redis(host="127.0.0.1", port=cfg.redis()).info("memory")
        load.extra["used_memory"] = float(info["used_memory"])
        load.extra["server_rss"] = float(tree_memory(cfg.redis_server.pids())[0])
    cfg.loads[backend] = load
    progress(
        f"  {backend}: {load.wall:.1f} s wall ({load.put_s:.1f} s put_many, {load.commit_s:.2f} s "
        f"commit), {load.cpu:.1f} CPU-s, peak RSS {load.peak_rss / MB:.0f} MB"
    )


def dataset(cfg: Config, backend: str) -> None:
    """Make sure NAMESPACE holds the keys in ``backend`` (loaded unreported if needed)."""
    if backend not in cfg.loaded:
        bulk_load(cfg, backend, report=False)


def part_bulk(cfg: Config) -> None:
    for backend in ("lmdb", "redis"):
        try:
            bulk_load(cfg, backend, report=True)
        except (BenchFailed, RuntimeError, redis.RedisError) as exc:
            cfg.fail(f"bulk {backend}", exc)


# --------------------------------------------------------------------------- reads


def sample_keys(cfg: Config, count: int, seed: int, *, distinct: bool = False) -> list[str]:
    """``count`` loaded keys at random (``distinct``: without repeats)."""
    rng = random.Random(seed)
    n = cfg.loaded_keys()
    if distinct:
        return [f"p{i:07d}" for i in rng.sample(range(n), count)]
    return [f"p{rng.randrange(n):07d}" for _ in range(count)]


Case = tuple[Reads, Callable[[Any], object], list[Any]]


def run_rounds(cfg: Config, cases: list[Case]) -> None:
    """Warm every case up, then ``--rounds`` rounds of ``--seconds`` per case, alternating."""
    for _, call, args in cases:
        warm(call, args, min(0.5, cfg.args.seconds))
    for round_ in range(cfg.args.rounds):
        for case, call, args in cases:
            timed(call, args, cfg.args.seconds, case)
        progress(f"  round {round_ + 1}/{cfg.args.rounds} done")
    for case, _, _ in cases:
        case.finish()
        progress(
            f"  {case.what}: {case.ops:,.0f} calls/s, p50 {case.p50_us:.1f} µs, "
            f"p99 {case.p99_us:.1f} µs, p99.9 {case.p999_us:.1f} µs"
        )


def check_value(value: object, key: str) -> None:
    start = int(key[1:]) % 50_000
    if value != list(range(start, start + 50)):
        raise BenchFailed(
            f"key {key!r} read back {value!r:.80}, not the 50 ints it was loaded with"
        )


def part_lmdb(cfg: Config) -> None:
    dataset(cfg, "lmdb")
    url = cfg.url("lmdb")
    plain = cache.reader(NAMESPACE, url=url)
    lru = cache.reader(NAMESPACE, url=url, lru=LRU)
    uniform = sample_keys(cfg, 200_000, seed=1)
    hot = sample_keys(cfg, HOT, seed=2, distinct=True)
    batches = [uniform[i : i + MGET] for i in range(0, len(uniform), MGET)]
    check_value(plain.get(uniform[0]), uniform[0])
    check_value(lru.get(hot[0]), hot[0])
    if len(plain.get_many(batches[0])) != MGET:
        raise BenchFailed(f"get_many of {MGET} loaded keys did not find them all")
    # the floor: py-lmdb on the reader's own environment (LMDB allows one open per process),
    # a read transaction per get, the bytes as stored - no decode, no metrics, no version check
    backend: Any = plain.backend
    version = plain.version
    assert version is not None
    prefix = backend._prefix(NAMESPACE, version)
    env = backend._e()
    raw_keys = [prefix + k.encode() for k in uniform]

    def raw_get(key: bytes) -> object:
        with env.env.begin(db=env.data) as txn:
            return txn.get(key)

    cases: list[Case] = [
        (
            cfg.case("lmdb-raw", "lmdb", "py-lmdb `txn.get` (raw bytes; the floor)"),
            raw_get,
            raw_keys,
        ),
        (
            cfg.case(
                "lmdb-get", "lmdb", f"reader `get`, no LRU, uniform over {cfg.loaded_keys():,} keys"
            ),
            plain.get,
            uniform,
        ),
        (
            cfg.case("lmdb-get-hot", "lmdb", f"reader `get`, no LRU, {HOT:,} hot keys"),
            plain.get,
            hot,
        ),
        (
            cfg.case("lmdb-get-lru", "lmdb", f"reader `get`, LRU {LRU:,}, {HOT:,} hot keys"),
            lru.get,
            hot,
        ),
        (
            cfg.case("lmdb-many", "lmdb", f"reader `get_many` of {MGET}, no LRU", MGET),
            plain.get_many,
            batches,
        ),
    ]
    progress(f"lmdb reads: {cfg.args.rounds} rounds of {cfg.args.seconds:g} s per case")
    run_rounds(cfg, cases)
    lru_hits = sum(1 for key in hot if (version, key) in lru._lru)
    if lru_hits != len(hot):
        cfg.notes["lmdb LRU"] = f"only {lru_hits} of the {len(hot)} hot keys were in the LRU"
        progress(f"  note: {cfg.notes['lmdb LRU']}")


def part_redis(cfg: Config) -> None:
    dataset(cfg, "redis")
    url = cfg.url("redis")
    port = cfg.redis()
    reader = cache.reader(NAMESPACE, url=url)
    version = reader.version
    if version is None:
        raise BenchFailed(f"no live version of {NAMESPACE!r} in {url}")
    raw = redis.Redis(host="127.0.0.1", port=port)  # redis-py's defaults
    data = f"shipyard:{NAMESPACE}:v:{version}:"
    uniform = sample_keys(cfg, 200_000, seed=3)
    batches = [uniform[i : i + MGET] for i in range(0, len(uniform), MGET)]
    raw_keys = [(data + k).encode() for k in uniform]
    raw_batches = [raw_keys[i : i + MGET] for i in range(0, len(raw_keys), MGET)]
    # the same stored bytes both ways
    stored = raw.get(raw_keys[0])
    if stored is None or msgpack.unpackb(stored[1:]) != reader.get(uniform[0]):
        raise BenchFailed(f"raw GET of {raw_keys[0]!r} and the reader disagree")
    check_value(reader.get(uniform[0]), uniform[0])
    if len(reader.get_many(batches[0])) != MGET or None in raw.mget(raw_batches[0]):
        raise BenchFailed(f"MGET of {MGET} loaded keys did not find them all")

    def raw_decoded(key: bytes) -> object:
        value = raw.get(key)
        return None if value is None else msgpack.unpackb(memoryview(value)[1:])  # type: ignore[arg-type]

    def raw_mget_decoded(keys: list[bytes]) -> object:
        return [
            None if v is None else msgpack.unpackb(memoryview(v)[1:])  # type: ignore[arg-type]
            for v in raw.mget(keys)
        ]

    cases: list[Case] = [
        (cfg.case("redis-raw-get", "redis", "raw redis-py `GET`"), raw.get, raw_keys),
        (cfg.case("redis-get", "redis", "shipyard reader `get` (no LRU)"), reader.get, uniform),
        (
            cfg.case("redis-raw-get-decode", "redis", "raw redis-py `GET` + msgpack decode"),
            raw_decoded,
            raw_keys,
        ),
        (
            cfg.case("redis-raw-mget", "redis", f"raw redis-py `MGET` of {MGET}", MGET),
            raw.mget,
            raw_batches,
        ),
        (
            cfg.case(
                "redis-raw-mget-decode",
                "redis",
                f"raw redis-py `MGET` of {MGET} + msgpack decode",
                MGET,
            ),
            raw_mget_decoded,
            raw_batches,
        ),
        (
            cfg.case("redis-many", "redis", f"shipyard reader `get_many` of {MGET}", MGET),
            reader.get_many,
            batches,
        ),
    ]
    progress(f"redis reads: {cfg.args.rounds} rounds of {cfg.args.seconds:g} s per case")
    try:
        run_rounds(cfg, cases)
    finally:
        raw.close()
        reader.close()


# --------------------------------------------------------------------------- ranker


def part_ranker(cfg: Config) -> None:
    """The movie_ranker flow on small synthetic data, then wrk on /ranker/home."""
    home = cfg.workdir / "home-ranker"  # shipyard_host's SHIPYARD_HOME for the name "ranker"
    env = cfg.env(SHIPYARD_HOME=str(home))
    logs = cfg.workdir / "logs"
    logs.mkdir(exist_ok=True)
    every_cpu = ["taskset", "-c", ",".join(map(str, cfg.cpus))]
    argv = [*every_cpu, str(PYTHON), str(RANKER / "flow.py"), "run", *FLOW_ARGS]
    progress(f"ranker: {shlex.join(argv)} (SHIPYARD_HOME={home})")
    measured = run_measured(argv, cwd=RANKER, env=env, timeout=600, log_stem=logs / "flow")
    if not measured.ok:
        raise BenchFailed(f"the movie_ranker flow failed:\n{measured.tail()}")
    cfg.flow = {"wall": measured.wall, "cpu": measured.cpu, "peak_rss": measured.peak_rss}
    progress(f"  flow: {measured.wall:.1f} s wall, {measured.cpu:.1f} CPU-s")
    shipyard = [str(PYTHON), "-m", "shipyard"]
    run_text([*shipyard, "models", "alias", "ranker", "latest", "prod"], timeout=120, env=env)
    target = f"{RANKER / 'service.py'}:Ranker"  # absolute: SERVE / target is target
    with shipyard_host(cfg, "ranker", target, "ranker", cfg.args.replicas) as (server, base):
        url = base + "/ranker/home"
        answer = httpx.post(
            url, content=HOME_BODY, headers={"content-type": "application/json"}, timeout=30
        )
        body = answer.json() if answer.status_code == 200 else {}
        if body.get("source") != "cache" or len(body.get("items", [])) != 10:
            raise BenchFailed(
                f"{url} answered {answer.status_code} {answer.text[:300]!r}: expected 10 items "
                "from the cache; host log: " + str(server.log)
            )
        for c in cfg.args.connections:
            cfg.measure(server, url, c, body=HOME_BODY, label="home")
    cfg.flow.update({k: float(v) for k, v in cfg.servers.get("ranker", {}).items()})


# --------------------------------------------------------------------------- report


def us(value: float) -> str:
    return f"{value:.1f} µs" if value < 1000 else f"{value / 1000:.2f} ms"


def reads_table(cfg: Config) -> list[str]:
    rows = [
        "| backend | what | calls/s | keys/s | p50 | p99 | p99.9 |",
        "|---|---|---|---|---|---|---|",
    ]
    for part, label in (("redis", "Redis (TCP, 127.0.0.1)"), ("lmdb", "LMDB, in-process")):
        for case in cfg.reads.values():
            if case.part != part or not case.calls:
                continue
            rows.append(
                f"| {label} | {case.what} | {case.ops:,.0f} | {case.ops * case.keys_per_call:,.0f} "
                f"| {us(case.p50_us)} | {us(case.p99_us)} | {us(case.p999_us)} |"
            )
    return rows


def loads_table(cfg: Config) -> list[str]:
    rows = [
        "| backend | keys | wall | of which `put_many` / `commit` | keys/s | loader CPU "
        "| loader peak RSS | stored |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, load in cfg.loads.items():
        if name == "lmdb":
            stored = f"data.mdb {load.extra['file_bytes'] / MB:,.0f} MB"
        else:
            stored = (
                f"`used_memory` {load.extra['used_memory'] / MB:,.0f} MB, "
                f"server RSS {load.extra['server_rss'] / MB:,.0f} MB"
            )
        rows.append(
            f"| {name} | {load.keys:,} | {load.wall:.1f} s | {load.put_s:.1f} s / "
            f"{load.commit_s:.2f} s | {load.keys / load.wall:,.0f} | {load.cpu:.1f} s "
            f"| {load.peak_rss / MB:.0f} MB | {stored} |"
        )
    return rows


def ranker_table(cfg: Config) -> list[str]:
    if not cfg.points:
        return []
    rows = [
        "| connections | requests/s | p50 | p99 | server CPU-ms / request |",
        "|---|---|---|---|---|",
    ]
    for p in cfg.points:
        rps = f"{p.rps:,.0f}" + (" (with errors)" if p.errors else "")
        rows.append(
            f"| {p.connections} | {rps} | {ms(p.p50_ms)} | {ms(p.p99_ms)} "
            f"| {p.cpu_ms_per_request:.3f} |"
        )
    return rows


def goals(cfg: Config) -> list[str]:
    rows = ["| goal | measured | met |", "|---|---|---|"]
    get = cfg.reads.get("lmdb-get")
    if get and get.calls:
        rows.append(
            f"| embedded (LMDB) reader `get` p99 < {GOAL_P99_US:g} µs in-process, no LRU "
            f"| {us(get.p99_us)} | {yes(get.p99_us < GOAL_P99_US)} |"
        )
    for ours, theirs, what in (
        ("redis-get", "redis-raw-get", "`get` vs `GET`"),
        ("redis-many", "redis-raw-mget", f"`get_many` vs `MGET` of {MGET}"),
    ):
        a, b = cfg.reads.get(ours), cfg.reads.get(theirs)
        if a and b and a.calls and b.calls:
            ratio = a.ops / b.ops
            rows.append(
                f"| Redis reader ≥ {GOAL_REDIS_RATIO:.0%} of raw redis-py ops/s, {what} "
                f"| {a.ops:,.0f} vs {b.ops:,.0f}: {ratio:.0%} | {yes(ratio >= GOAL_REDIS_RATIO)} |"
            )
    for ours, theirs, what in (
        ("redis-get", "redis-raw-get-decode", "`get` vs `GET` + msgpack decode"),
        ("redis-many", "redis-raw-mget-decode", f"`get_many` vs `MGET` of {MGET} + msgpack decode"),
    ):
        a, b = cfg.reads.get(ours), cfg.reads.get(theirs)
        if a and b and a.calls and b.calls:
            rows.append(
                f"| (like for like, not the issue's goal) Redis reader vs raw redis-py that also "
                f"decodes, {what} | {a.ops:,.0f} vs {b.ops:,.0f}: {a.ops / b.ops:.0%} | - |"
            )
    for name, load in cfg.loads.items():
        met = yes(load.wall < GOAL_LOAD_S) if load.keys >= 1_000_000 else "(fewer keys: not judged)"
        rows.append(
            f"| {load.keys:,}-key bulk load into {name} < {GOAL_LOAD_S:g} s "
            f"| {load.wall:.1f} s | {met} |"
        )
    return rows


def section(cfg: Config, command: str, when: str) -> str:
    m, args = cfg.machine, cfg.args
    versions = ", ".join(f"{k} {v}" for k, v in sorted(cfg.versions.items()))
    pinned = (
        "the driver (the reads, the loaders) and wrk on CPU 1, redis-server and the host on "
        "CPU 0 (`taskset`)"
        if cfg.pin_load
        else "no CPU pinning (`--no-pin`)"
    )
    lines = [
        "## Precompute cache: shipyard's reader vs raw redis-py, LMDB in-process, bulk loads, "
        "`/ranker/home`",
        "",
        f"Measured {when} with `{command}` (from the repository root).",
        "",
        machine_line(m, f"; disk {m['disk']}") + ".",
        f"- Versions: {versions}.",
        f"- Pinning: {pinned}."
        + (
            f" Data: {cfg.loaded_keys():,} keys `p0000000`… in namespace `{NAMESPACE}`, each a "
            "list of 50 ints (~150 bytes as msgpack)."
            if cfg.loaded
            else ""
        ),
        "",
        "Goals (from the issue):",
        "",
        *goals(cfg),
    ]
    if cfg.reads:
        lines += [
            "",
            f"Reads ({args.rounds} rounds of {args.seconds:g} s per case, cases alternating "
            "within a round, after a 0.5 s warm-up each; keys drawn at random from the loaded "
            "ones; one thread):",
            "",
            *reads_table(cfg),
        ]
    if cfg.loads:
        lines += [
            "",
            "Bulk loads (`cache.writer(...).put_many(items, total=N)` + `commit()`, one process "
            "each, items generated lazily; wall from fork to exit, peak RSS sampled every 20 ms):",
            "",
            *loads_table(cfg),
        ]
    ranker = ranker_table(cfg)
    if ranker:
        f = cfg.flow
        lines += [
            "",
            f"`/ranker/home` through the host: `examples/movie_ranker/flow.py run "
            f"{' '.join(FLOW_ARGS)}` ({f.get('wall', 0):.0f} s) in a fresh SHIPYARD_HOME, "
            f"`service.py:Ranker` deployed with {args.replicas} replica(s) (LRU 10,000 in "
            f"the service), wrk {cfg.versions.get('wrk', '')} 1 thread posting `{HOME_BODY}`, "
            f"{args.duration:g} s after a {args.warmup:g} s warm-up per connection count; "
            f"host peak RSS {f.get('peak_rss', 0) / MB:.0f} MB (front + replicas):",
            "",
            *ranker,
        ]
    if cfg.notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {name}: {msg}" for name, msg in cfg.notes.items()]
    lines += failed_lines(cfg.errors)
    lines += [
        "",
        "How to read it:",
        "",
        "- calls/s: calls completed over the time of the timed loop, one caller, one thread; "
        "p50/p99/p99.9: `perf_counter_ns` around each call (the loop adds ~0.1 µs per call). "
        "keys/s counts the keys of `get_many`/`MGET` calls.",
        "- Raw redis-py returns the stored bytes; the reader also resolves the live version "
        "(one `GET` per `refresh_seconds`, 1 s), counts Prometheus metrics and decodes msgpack: "
        "the `GET` + msgpack row separates the decode from the rest.",
        "- The LRU rows draw from 5,000 keys, so after the warm-up every `get` is a hit; the "
        "uniform row is the cold-key case the goal is judged on.",
        "- Loader peak RSS of the LMDB load counts the pages of the memory-mapped `data.mdb` "
        "the load touched (file-backed page cache, not heap); the Redis loader's is its heap, "
        "bounded by the writer's batches of 10,000 items.",
        "- `/ranker/home`: every request asks for the same profile (the issue's body), so after "
        "the first one the row comes from the service's in-process LRU: the numbers are the "
        "host's request path (HTTP, validation, the hop to the replica) plus a cache hit. "
        "Server CPU-ms / request: user + system CPU of the host's process tree over the run.",
        "- The machine is shared (see the load average): tail latencies (p99, p99.9) move "
        "with whatever else runs; the ratios of the alternating read cases are steadier.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}"
    )
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys per bulk load")
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="seconds per read case and round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the read cases")
    parser.add_argument("--load-timeout", type=float, default=300.0, help="seconds per bulk load")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of wrk warm-up")
    parser.add_argument("--connections", default="1,32", help="wrk connections, comma-separated")
    parser.add_argument("--replicas", type=int, default=1, help="replicas of the Ranker service")
    add_output_options(
        parser, no_pin="do not pin the load and servers", keep="keep bench/.work/cache-* and logs"
    )
    args = parser.parse_args(argv)
    check_options(parser, args, PARTS)
    if not 1_000 <= args.keys <= 20_000_000:
        parser.error("--keys must be in [1000, 20000000]")
    if not 0 < args.seconds <= 60 or not 1 <= args.rounds <= 20:
        parser.error("--seconds must be in (0, 60] and --rounds in [1, 20]")
    if not 0 < args.load_timeout <= 3600:
        parser.error("--load-timeout must be in (0, 3600]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = start(Config, args, "cache", wrk="ranker" in args.parts)
    workdir = cfg.workdir
    os.environ["SHIPYARD_HOME"] = str(workdir / "home-driver")  # never ~/.shipyard
    cfg.versions.update(
        {
            "shipyard": f"{importlib.metadata.version('shipyard')} ({git_state()})",
            "redis-py": importlib.metadata.version("redis"),
            "py-lmdb": f"{lmdb.__version__} (LMDB {'.'.join(map(str, lmdb.version()[:3]))})",
            "msgpack": importlib.metadata.version("msgpack"),
        }
    )
    parts = {"bulk": part_bulk, "lmdb": part_lmdb, "redis": part_redis, "ranker": part_ranker}
    progress(f"work directory {workdir}; parts {args.parts}")
    with cfg.stack:  # stops every server at the end, also on failure or Ctrl-C
        try:
            for part in PARTS:  # in this order: the read parts use the bulk-loaded data
                if part not in args.parts:
                    continue
                try:
                    parts[part](cfg)
                except (BenchFailed, RuntimeError, redis.RedisError, cache.CacheError) as exc:
                    cfg.fail(part, exc)
        except KeyboardInterrupt:
            progress(f"interrupted; stopping servers; logs in {workdir}")
            return 130
    text = section(cfg, command("cache", argv, cfg.machine), cfg.when)
    raw = {
        "reads": {k: asdict(v) for k, v in cfg.reads.items()},
        "loads": {k: asdict(v) for k, v in cfg.loads.items()},
        "ranker": [asdict(p) for p in cfg.points],
        "flow": cfg.flow,
        "errors": cfg.errors,
    }
    return finish(args, "cache", text, raw, cfg.errors, workdir)


if __name__ == "__main__":
    sys.exit(main())
