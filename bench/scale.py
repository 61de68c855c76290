"""Scale on paper: the personalised-row job at a large streaming service's size, from the
measured rows of BENCHMARKS.md.

    .venv/bin/python bench/scale.py > docs/scale.md

It reads three measured numbers (and says which rows they come from), never a constant of
its own for something measured:

- the rank rate per core: the "rank rate per core" row of the Ray section (bench/ray.py),
  ``Ranker.rows`` of examples/movie_ranker over a 10,000-title catalogue on one core;
- a Redis node's write rate and memory per row: the redis row of the cache section's bulk
  loads (bench/cache.py), keys/s of one loader into one redis-server and its ``used_memory``
  over the keys it holds;
- the per-task overhead on Ray: the foreach row of the largest size run by shipyard's Ray
  executor in the Ray section (wall per task with the cluster's CPUs busy, CPU per task).

Everything else is the job's size (the issue's) and stated assumptions (the ASSUMED dict).
tests/test_scale_doc.py checks that docs/scale.md is this script's output, so the doc cannot
drift from BENCHMARKS.md: rerun the benchmarks, then this script.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "BENCHMARKS.md"

MEMBERS = 135_000_000
PROFILES_PER_MEMBER = 5  # "up to 5": sized for the most
TITLES = 10_000
EVERY_HOURS = 4
REGIONS = 3

ASSUMED = {
    # a Redis node's usable memory: the size people keep one shard at so that a full resync
    # or a restart stays short; the rest of the machine is for the fork of a save and slack
    "redis_node_gb": 25,
    # the rank should end in half the window, so one failed cycle can run again in time
    "rank_share_of_window": 0.5,
    # profiles per Ray task (one shard of the foreach)
    "profiles_per_task": 100_000,
    # a machine of the cluster
    "cores_per_machine": 32,
}


class RowMissing(Exception):
    pass


def _section(text: str, marker: str) -> str:
    start, end = f"<!-- bench:{marker}:start -->", f"<!-- bench:{marker}:end -->"
    i, j = text.find(start), text.find(end)
    if i == -1 or j == -1:
        raise RowMissing(f"BENCHMARKS.md has no {marker} section ({start} ... {end})")
    return text[i:j]


def _number(cell: str) -> float:
    match = re.search(r"[\d,]+(?:\.\d+)?", cell)
    if match is None:
        raise RowMissing(f"no number in {cell!r}")
    return float(match.group(0).replace(",", ""))


def _ms(cell: str) -> float:
    value = _number(cell)
    return value * 1000 if cell.strip().endswith(" s") else value


@dataclass
class Measured:
    rank_rate: float  # home rows / s on one core, whole catalogue
    rank_row: str
    redis_keys_per_s: float
    redis_bytes_per_key: float
    redis_row: str
    ray_tasks: int
    ray_wall_ms: float  # per task, the cluster's CPUs busy
    ray_cpu_ms: float  # per task, every process of the machine
    ray_cpu_ours_ms: float  # per task, the run's and the cluster's processes
    ray_row: str
    ray_measured: str
    cache_measured: str


def read(text: str) -> Measured:
    ray = _section(text, "ray")
    cache = _section(text, "cache")
    rank = re.search(r"^\| rank rate per core \| ([\d,]+) home rows / s \|$", ray, re.M)
    if rank is None:
        raise RowMissing("the ray section has no 'rank rate per core' row (bench/ray.py)")
    redis = re.search(r"^\| redis \| ([\d,]+) \|.*$", cache, re.M)
    if redis is None:
        raise RowMissing("the cache section has no bulk-load row for redis (bench/cache.py)")
    cells = [c.strip() for c in redis.group(0).strip("|").split("|")]
    keys = _number(cells[1])
    used = re.search(r"`used_memory` ([\d,]+) MB", cells[-1])
    if used is None:
        raise RowMissing(f"the redis bulk-load row has no `used_memory`: {redis.group(0)}")
    ray_rows = re.findall(r"^\| [\d,]+ \| shipyard `--executor ray` \|.*$", ray, re.M)
    if not ray_rows:
        raise RowMissing("the ray section has no foreach row for shipyard `--executor ray`")
    line = max(ray_rows, key=lambda row: _number(row.split("|")[1]))
    size = int(_number(line.split("|")[1]))
    rc = [c.strip() for c in line.strip("|").split("|")]
    if rc[2] == "failed":
        raise RowMissing(f"the Ray foreach of {size:,} failed in BENCHMARKS.md: {line}")

    def when(section: str) -> str:
        found = re.search(r"Measured (\d{4}-\d\d-\d\d [\d:]+ UTC)", section)
        return found.group(1) if found else "?"

    return Measured(
        rank_rate=_number(rank.group(1)),
        rank_row=rank.group(0),
        redis_keys_per_s=_number(cells[4]),
        redis_bytes_per_key=_number(used.group(1)) * 2**20 / keys,
        redis_row=redis.group(0),
        ray_tasks=int(_number(rc[3])),
        ray_wall_ms=_ms(rc[4]),
        ray_cpu_ms=_ms(rc[5]),
        ray_cpu_ours_ms=_ms(rc[6]),
        ray_row=line,
        ray_measured=when(ray),
        cache_measured=when(cache),
    )


def n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def render(m: Measured) -> str:
    a = ASSUMED
    profiles = MEMBERS * PROFILES_PER_MEMBER
    window_s = EVERY_HOURS * 3600
    rank_s = window_s * a["rank_share_of_window"]

    core_s = profiles / m.rank_rate
    cores_window = core_s / window_s
    cores = math.ceil(core_s / rank_s)
    machines = math.ceil(cores / a["cores_per_machine"])
    cores_built = machines * a["cores_per_machine"]
    per_task = a["profiles_per_task"]
    tasks = math.ceil(profiles / per_task)
    task_s = per_task / m.rank_rate
    overhead_cpu_s = tasks * m.ray_cpu_ours_ms / 1000
    hours = (core_s + overhead_cpu_s) / cores_built / 3600

    naive_tasks = profiles
    naive_overhead_h = naive_tasks * m.ray_cpu_ours_ms / 1000 / 3600
    naive_wall_days = naive_tasks * m.ray_wall_ms / 1000 / 86400

    gb = 1e9
    region_bytes = profiles * m.redis_bytes_per_key
    peak_bytes = 2 * region_bytes
    nodes_memory = math.ceil(peak_bytes / (a["redis_node_gb"] * gb))
    write_rate = profiles / (hours * 3600)
    nodes_write = write_rate / m.redis_keys_per_s
    nodes_total = nodes_memory * REGIONS
    write_headroom = nodes_memory * m.redis_keys_per_s / write_rate
    one_node_profiles = a["redis_node_gb"] * gb / (2 * m.redis_bytes_per_key)
    cores_one_node_writes = m.redis_keys_per_s * m.rank_rate**-1

    lines = [
        "# Scale on paper: every home row, every 4 hours, at a large streaming service's size",
        "",
        "Printed by `python bench/scale.py > docs/scale.md` from the measured rows of "
        "BENCHMARKS.md (tests/test_scale_doc.py keeps the two in step). Rerun the "
        "benchmarks on the machine you mean, then the script: every number below follows.",
        "",
        "## The job",
        "",
        f"- {n(MEMBERS)} members, up to {PROFILES_PER_MEMBER} profiles each: sized for "
        f"{n(profiles)} profiles.",
        f"- The whole catalogue, ~{n(TITLES)} titles, ranked for every profile every "
        f"{EVERY_HOURS} hours: the movie ranker's `rank` step (examples/movie_ranker), a foreach "
        "over shards of profiles, each task scoring its profiles against every title and "
        "writing their home rows into a new cache version, published when every shard is in.",
        f"- Read from {REGIONS} regions: each region holds the whole live version in its own "
        "Redis (the cache's regions), written by the job.",
        "",
        "## What was measured (BENCHMARKS.md)",
        "",
        "| number | value | row |",
        "|---|---|---|",
        f"| rank rate per core (whole catalogue, one BLAS thread) | {n(m.rank_rate)} rows / s "
        f'| Ray section ({m.ray_measured}), row "rank rate per core" |',
        f"| Redis bulk write, one loader into one node | {n(m.redis_keys_per_s)} rows / s "
        f'| cache section ({m.cache_measured}), bulk loads, row "redis": keys/s |',
        f"| Redis memory per row (`used_memory` / keys; a row of 50 ints) | "
        f"{n(m.redis_bytes_per_key)} bytes | the same row: `used_memory` / keys |",
        f"| per-task overhead on Ray: CPU of the run and the cluster | "
        f"{n(m.ray_cpu_ours_ms, 1)} ms | Ray section, foreach of {n(m.ray_tasks - 3)}, "
        "shipyard `--executor ray`: CPU / task (ours) |",
        f"| the same, CPU of the whole shared machine (others' load included) | "
        f"{n(m.ray_cpu_ms, 1)} ms | the same row: CPU / task (machine) |",
        f"| per-task wall on Ray, 2 tasks in flight on a 2-CPU cluster | "
        f"{n(m.ray_wall_ms, 1)} ms | the same row: wall / task |",
        "",
        "The overhead below is the run's and the cluster's own CPU per task: the whole "
        "machine's figure also counts what other users of the shared machine ran meanwhile.",
        "",
        "Assumptions (not measured): "
        + "; ".join(
            [
                f"a Redis node holds {a['redis_node_gb']} GB",
                f"the rank ends within {a['rank_share_of_window']:.0%} of the window (so one "
                "failed cycle can run again in time)",
                f"{n(per_task)} profiles per Ray task",
                f"machines of {a['cores_per_machine']} cores",
                "a publish keeps the live version while the next one is written (2x memory "
                "at the peak)",
            ]
        )
        + ".",
        "",
        "## Ray workers (cores)",
        "",
        "```",
        f"profiles              = {n(MEMBERS)} x {PROFILES_PER_MEMBER} = {n(profiles)}",
        f"core-seconds / cycle  = {n(profiles)} / {n(m.rank_rate)} rows/s = {n(core_s)} "
        f"({n(core_s / 3600, 1)} core-hours)",
        f"{f'cores for {EVERY_HOURS} h':<22}= {n(core_s)} / {n(window_s)} s = {n(cores_window, 1)}",
        f"{f'cores for {n(rank_s / 3600, 1)} h':<22}= {n(core_s)} / {n(rank_s)} s = {n(cores)} "
        f"-> {machines} machine(s) of {a['cores_per_machine']} = {cores_built} Ray workers",
        f"tasks / cycle         = {n(profiles)} / {n(per_task)} = {n(tasks)} "
        f"({n(task_s, 1)} s of ranking each)",
        f"overhead / cycle      = {n(tasks)} x {n(m.ray_cpu_ours_ms, 1)} ms = "
        f"{n(overhead_cpu_s, 1)} CPU-s "
        f"({n(100 * overhead_cpu_s / core_s, 2)}% of the ranking)",
        f"hours / cycle         = ({n(core_s)} + {n(overhead_cpu_s, 1)}) / {cores_built} / "
        f"3,600 = {n(hours, 2)} h",
        "```",
        "",
        "## Redis nodes",
        "",
        "```",
        f"memory / region       = {n(profiles)} x {n(m.redis_bytes_per_key)} B = "
        f"{n(region_bytes / gb)} GB",
        f"at a publish (2x)     = {n(peak_bytes / gb)} GB -> "
        f"{n(peak_bytes / gb)} / {a['redis_node_gb']} GB = {nodes_memory} nodes per region",
        f"nodes                 = {nodes_memory} x {REGIONS} regions = {nodes_total} "
        "(primaries; replicas double it)",
        f"write rate / region   = {n(profiles)} / ({n(hours, 2)} h x 3,600) = "
        f"{n(write_rate)} rows/s",
        f"nodes for that rate   = {n(write_rate)} / {n(m.redis_keys_per_s)} = "
        f"{n(nodes_write, 2)} node(s); with {nodes_memory}: {n(write_headroom, 1)}x headroom",
        "```",
        "",
        "## Where it breaks first",
        "",
        "1. **The cache's regions: one Redis server each.** shipyard's cache keeps a region in "
        "one Redis (`SHIPYARD_CACHE_URL` lists one URL per region; the replicated backend "
        "writes every region, it does not shard a region over nodes). At the measured "
        f"{n(m.redis_bytes_per_key)} bytes per row, a {a['redis_node_gb']} GB node holds the "
        f"live and the next version of {n(one_node_profiles)} profiles "
        f"({a['redis_node_gb']} GB / (2 x {n(m.redis_bytes_per_key)} B)): "
        f"{n(profiles / one_node_profiles, 1)}x short of {n(profiles)}. This is the first thing "
        f"to break, and the binding number is the {n(m.redis_bytes_per_key)} bytes per row: the "
        f"job needs {nodes_memory} nodes per region ({nodes_total} in all), so the cache needs "
        "a region sharded over nodes (Redis Cluster, or keys hashed over several URLs), or a "
        "smaller row (ids as varints, 20 titles instead of 50, about halves it).",
        f"2. **Redis writes, next.** One node per region would take {n(write_rate)} rows/s "
        f"while the rank runs ({n(hours, 2)} h), {n(100 / write_headroom * nodes_memory)}% of "
        f"the measured {n(m.redis_keys_per_s)} rows/s of one node; every core added to finish "
        f"faster adds {n(m.rank_rate)} rows/s, so about {n(cores_one_node_writes)} cores of "
        "ranking saturate one node's measured write rate. Sharded over "
        f"{nodes_memory} nodes a region has {n(write_headroom, 1)}x headroom.",
        f"3. **Per-task overhead, if the foreach is per profile.** {n(naive_tasks)} tasks x "
        f"{n(m.ray_cpu_ours_ms, 1)} ms of CPU = {n(naive_overhead_h)} core-hours of overhead "
        f"per cycle against {n(core_s / 3600, 1)} core-hours of ranking, and one runtime "
        f"starting them at the measured {n(m.ray_wall_ms, 1)} ms each would take "
        f"{n(naive_wall_days)} days. Over shards of {n(per_task)} profiles the overhead is "
        f"{n(100 * overhead_cpu_s / core_s, 2)}% and {n(tasks)} tasks a cycle are nothing for "
        "one runtime.",
        f"4. **Not binding:** the ranking itself, {n(core_s / 3600, 1)} core-hours a cycle "
        f"({cores_built} Ray workers finish in {n(hours, 2)} h). Reads are not sized here: "
        "BENCHMARKS.md measures one client against Redis, not a node's capacity.",
        "",
        "The numbers come from a 2-core shared machine (see each BENCHMARKS.md section's "
        "machine and load); on a production node the rank rate per core and the per-task "
        "overhead will differ, the arithmetic will not.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    try:
        measured = read(BENCHMARKS.read_text())
    except RowMissing as exc:
        print(f"bench/scale.py: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
