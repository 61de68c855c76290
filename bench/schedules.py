"""Schedules under load: the lag from fire time to run started, shipyard and Dagster side by side.

    .venv/bin/python bench/schedules.py                      # everything (~25 min), to stdout
    .venv/bin/python bench/schedules.py --write              # ... and updates BENCHMARKS.md
    .venv/bin/python bench/schedules.py --quick              # 60 + 20 schedules, 1-minute period
    .venv/bin/python bench/schedules.py --only shipyard-sqlite,dagster-sqlite

The load (issue 17): ``--schedules`` (1,000) schedules of a trivial two-step flow, each due
every ``--period`` (5) minutes, spread over the period by ``jitter`` (about 3.3 fires a
second), plus a burst of ``--burst`` (100) schedules due in the same second, two minutes
into the period (reported apart). Each case runs the real scheduler as its own process on
the real clock for one period plus ``--grace`` seconds, then reads what happened from the
database: for every fire time of the first period,

- *recorded*: the fire record's ``created_at`` (the tick that saw it due);
- *launched*: the run's process is up and has taken its fire record (``started_at``, which
  the launcher writes first thing; for Dagster, the run's ``RUN_STARTING`` event, written
  when its run launcher has spawned the run's process);
- *run record*: the run's row exists (``runs.created_at``, written by ``shipyard run``; for
  Dagster the run's process has started executing, ``RUN_START``);

each minus the *jittered* fire time (``due_at``; Dagster has no jitter: its fire time is the
cron time). p50/p99 of each, steady load and burst apart; fire times not launched by the end
count in "not launched". The global cap (``--max-running``, default 16 as shipyard's own;
128 admits the whole burst, which on 2 cores makes every lag worse: BENCHMARKS.md) queues
fire times by design: those it queued (their record says ``global cap: ...``, ``waited:
global cap: ...`` once started) get rows of their own, and the goal is judged on those it
admitted at their fire time. ``--profile DIR`` runs
shipyard's scheduler under cProfile (``DIR/<case>-scheduler.prof``).

Cases: ``shipyard-sqlite`` and ``shipyard-pg`` (``python -m shipyard scheduler`` over a
fresh SQLite file, or a fresh database on ``SHIPYARD_TEST_PG_URL``/``--pg-url``), and
``dagster-sqlite`` (``dagster-daemon run`` over a local instance with its SQLite storage,
its default run launcher -- a process per run -- and its queued run coordinator capped like
shipyard's global cap; from its own venv, bench/.venvs/dagster, made on first use with a
pinned version). Dagster's schedules have no jitter and its scheduler daemon wakes once a
minute (``_get_next_scheduler_iteration_time`` in ``dagster/_scheduler/scheduler.py``), so
its 1,000 schedules are spread over the five minute offsets of the period (200 at each
minute boundary) and the burst is 100 more at one of them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from flows import HEADER
from measure import machine, write_section
from servers import BenchFailed, ensure_venv, progress

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SRC = REPO / "src"
sys.path.insert(0, str(SRC))  # this tree's shipyard, whatever the venv's editable install says

DAGSTER_VERSION = "1.13.27"
DAGSTER_POSTGRES_VERSION = "0.29.27"
CASES = ("shipyard-sqlite", "shipyard-pg", "dagster-sqlite")
GOAL_P99 = 1.0  # seconds, shipyard, fire time -> launched

FLOW = '''\
from shipyard import FlowSpec, step


class TickFlow(FlowSpec):
    """The trivial flow every benchmark schedule runs."""

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
'''


# --------------------------------------------------------------------------- the load


@dataclass(frozen=True)
class Load:
    schedules: int
    burst: int
    period: int  # minutes
    grace: float  # seconds after the period before the scheduler is stopped
    max_running: int
    interval: float  # shipyard's --interval

    @property
    def rate(self) -> float:
        return self.schedules / (self.period * 60)


def minute_boundary(after: dt.datetime) -> dt.datetime:
    """The first whole minute strictly after ``after``."""
    return after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)


def steady_cron(start: dt.datetime, period: int, offset: int = 0) -> str:
    """Every ``period`` minutes, the first fire time at ``start`` + ``offset`` minutes."""
    if period == 1:
        return "* * * * *"
    first = (start.minute + offset) % period
    return f"{first}-59/{period} * * * *"


def burst_cron(at: dt.datetime) -> str:
    return f"{at.minute} {at.hour} * * *"


@dataclass
class Fire:
    group: str  # steady | burst
    due: float  # epoch seconds: the jittered fire time
    recorded: float | None = None
    spawned: float | None = None
    launched: float | None = None
    run_record: float | None = None
    finished: float | None = None
    ok: bool | None = None
    #: the global cap queued it (its record says so: ``waited: global cap: ...`` once
    #: started, ``global cap: ...`` while still queued); reported apart from those the cap
    #: admitted at their fire time
    capped: bool = False


@dataclass
class Outcome:
    case: str
    tool: str
    fires: list[Fire] = field(default_factory=list)
    expected: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    daemon_cpu: float | None = None  # CPU seconds of the scheduler process itself
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start, the end
    window: float = 0.0


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


# --------------------------------------------------------------------------- shipyard


def pg_database(base_url: str, name: str) -> str:
    """Create database ``name`` (dropping a leftover) on the server of ``base_url``."""
    import sqlalchemy as sa

    engine = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return sa.engine.make_url(base_url).set(database=name).render_as_string(hide_password=False)


def pg_drop(base_url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def shipyard_env(home: Path, db_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if db_url:
        env["SHIPYARD_DB_URL"] = db_url
    return env


@contextlib.contextmanager
def environ(env: Mapping[str, str]) -> Any:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def shipyard_setup(load: Load, workdir: Path, env: Mapping[str, str]) -> dt.datetime:
    """Register the schedules; returns the first fire time (a minute boundary)."""
    from shipyard.config import settings
    from shipyard.schedules.manage import create
    from shipyard.schedules.policies import Policies
    from shipyard.schedules.store import ScheduleStore
    from shipyard.store.blobs import open_blob_store
    from shipyard.store.meta import MetaStore

    flow = workdir / "tick_flow.py"
    flow.write_text(FLOW)
    with environ(env):
        start = minute_boundary(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=40))
        now = start - dt.timedelta(seconds=1)  # the cursor: the first fire time is ``start``
        with MetaStore.open() as meta:
            store = ScheduleStore(meta)
            _, _, new = create(
                store,
                flow,
                name="tick-0000",
                user="bench",
                now=now,
                blobs=open_blob_store(settings().store_url),
                cron=steady_cron(start, load.period),
                overrides={"jitter": load.period * 60},
            )
            steady = replace(new, policies=Policies().merged(jitter=load.period * 60))
            for i in range(1, load.schedules):
                store.save(f"tick-{i:04d}", steady, user="bench", now=now)
            burst = replace(
                new,
                cron=burst_cron(start + dt.timedelta(minutes=min(2, load.period - 1))),
                policies=Policies(),
            )
            for i in range(load.burst):
                store.save(f"burst-{i:04d}", burst, user="bench", now=now)
    if dt.datetime.now(dt.UTC) > start - dt.timedelta(seconds=5):
        raise BenchFailed(f"registering {load.schedules + load.burst} schedules took too long")
    return start


def shipyard_collect(env: Mapping[str, str], start: dt.datetime, until: dt.datetime) -> list[Fire]:
    import sqlalchemy as sa

    from shipyard.schedules.scheduler import Scheduler
    from shipyard.store.meta import MetaStore
    from shipyard.store.schema import runs, schedule_fires

    f = schedule_fires.c
    out = []
    claim_ttl = inspect.signature(Scheduler).parameters["claim_ttl"].default
    with environ(env), MetaStore.open() as meta, meta.reader.connect() as conn:
        rows = conn.execute(
            sa.select(
                f.schedule,
                f.due_at,
                f.created_at,
                f.claim_expires,
                f.started_at,
                f.finished_at,
                f.exit_code,
                f.reason,
                runs.c.created_at.label("run_created"),
            )
            .outerjoin(runs, runs.c.run_id == f.run_id)
            .where(f.scheduled_for >= start, f.scheduled_for < until)
        ).all()
    for r in rows:

        def ts(value: dt.datetime | None) -> float | None:
            return None if value is None else value.timestamp()

        out.append(
            Fire(
                group="burst" if r.schedule.startswith("burst-") else "steady",
                due=r.due_at.timestamp(),
                recorded=ts(r.created_at),
                spawned=None if r.claim_expires is None else ts(r.claim_expires - claim_ttl),
                launched=ts(r.started_at),
                run_record=ts(r.run_created),
                finished=ts(r.finished_at),
                ok=None if r.exit_code is None else r.exit_code == 0,
                capped=(r.reason or "").startswith(("global cap", "waited: global cap")),
            )
        )
    return out


def wait_until(when: dt.datetime) -> None:
    while (left := (when - dt.datetime.now(dt.UTC)).total_seconds()) > 0:
        time.sleep(min(left, 5.0))


def cpu_of(proc: psutil.Process) -> float:
    with contextlib.suppress(psutil.Error):
        t = proc.cpu_times()
        return float(t.user + t.system)
    return 0.0


def stop_session(pid: int) -> None:
    """SIGTERM then SIGKILL the process group ``pid`` leads (one we started)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)


def run_shipyard(
    case: str, load: Load, workdir: Path, pg_url: str | None, profile: Path | None = None
) -> Outcome:
    backend = case.split("-", 1)[1]
    out = Outcome(case=case, tool="shipyard")
    home = workdir / case
    home.mkdir(mode=0o700)
    db_name = f"bench_schedules_{os.getpid()}"
    db_url = None
    if backend == "pg":
        if not pg_url:
            raise BenchFailed("shipyard-pg needs --pg-url or SHIPYARD_TEST_PG_URL")
        db_url = pg_database(pg_url, db_name)
    env = shipyard_env(home, db_url)
    try:
        progress(f"{case}: registering {load.schedules} + {load.burst} schedules")
        start = shipyard_setup(load, home, env)
        end = start + dt.timedelta(minutes=load.period)
        log = (workdir / f"{case}-scheduler.log").open("wb")
        progress(f"{case}: scheduler started; first fire time {start:%H:%M:%S}Z")
        argv = [sys.executable, "-m", "shipyard", "scheduler", "--interval", str(load.interval)]
        if profile is not None:  # cProfile writes its stats when the scheduler stops
            argv[1:1] = ["-m", "cProfile", "-o", str(profile / f"{case}-scheduler.prof")]
        argv += ["--max-running", str(load.max_running)]
        proc = subprocess.Popen(
            argv, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        sched = psutil.Process(proc.pid)
        try:
            wait_until(start - dt.timedelta(seconds=1))
            out.load = (os.getloadavg()[0], 0.0)
            cpu0 = cpu_of(sched)
            wait_until(end + dt.timedelta(seconds=load.grace))
            out.daemon_cpu = cpu_of(sched) - cpu0
            out.load = (out.load[0], os.getloadavg()[0])
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                stop_session(proc.pid)
                proc.wait(10)
            log.close()
        out.window = (end - start).total_seconds() + load.grace
        out.fires = shipyard_collect(env, start, end)
        stop_launchers(env, end)
    finally:
        if db_url and pg_url:
            with contextlib.suppress(Exception):
                pg_drop(pg_url, db_name)
    out.expected = {"steady": load.schedules, "burst": load.burst}
    return out


def stop_launchers(env: Mapping[str, str], until: dt.datetime) -> None:
    """Wait up to 60 s for the launched runs, then stop those still going (each launcher
    leads its own session: the bench started them through the scheduler)."""
    import sqlalchemy as sa

    from shipyard.store.meta import MetaStore
    from shipyard.store.schema import schedule_fires

    f = schedule_fires.c
    deadline = time.monotonic() + 60
    with environ(env), MetaStore.open() as meta:
        while True:
            with meta.reader.connect() as conn:
                pids = conn.execute(
                    sa.select(f.pid).where(f.pid.is_not(None), f.finished_at.is_(None))
                ).scalars()
                alive = [p for p in pids if psutil.pid_exists(p)]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(1)
    for pid in alive:
        stop_session(pid)


# --------------------------------------------------------------------------- Dagster

DAGSTER_DEFS = '''\
"""{schedules} + {burst} schedules of a trivial job (bench/schedules.py)."""
from dagster import DefaultScheduleStatus, Definitions, ScheduleDefinition, job, op


@op
def start():
    return 1


@op
def end(x):
    return x


@job
def tick():
    end(start())


STEADY = {steady!r}
BURST = {burst_cron!r}
schedules = [
    ScheduleDefinition(
        name=f"tick_{{i:04d}}",
        job=tick,
        cron_schedule=STEADY[i % len(STEADY)],
        default_status=DefaultScheduleStatus.RUNNING,
    )
    for i in range({schedules})
] + [
    ScheduleDefinition(
        name=f"burst_{{i:04d}}",
        job=tick,
        cron_schedule=BURST,
        default_status=DefaultScheduleStatus.RUNNING,
    )
    for i in range({burst})
]
defs = Definitions(jobs=[tick], schedules=schedules)
'''

DAGSTER_YAML = """\
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: {max_running}
"""

#: run in the Dagster venv: every run's scheduled time and when it was created, launched
#: (RUN_STARTING) and started (RUN_START); JSON on stdout
DAGSTER_COLLECT = """\
import json
from dagster import DagsterEventType, DagsterInstance
out = {}
with DagsterInstance.get() as instance:
    for rec in instance.get_run_records():
        run = rec.dagster_run
        out[run.run_id] = {
            "name": run.tags.get("dagster/schedule_name"),
            "scheduled": run.tags.get(".dagster/scheduled_execution_time")
            or run.tags.get("dagster/scheduled_execution_time"),
            "created": rec.create_timestamp.timestamp(),
            "start": rec.start_time,
            "end": rec.end_time,
            "status": run.status.value,
        }
    for kind, key in ((DagsterEventType.RUN_STARTING, "starting"),):
        cursor = None
        while True:
            page = instance.fetch_run_status_changes(
                kind, limit=1000, cursor=cursor, ascending=True
            )
            for record in page.records:
                if record.run_id in out:
                    out[record.run_id][key] = record.timestamp
            if not page.has_more:
                break
            cursor = page.cursor
print(json.dumps(out))
"""


def ensure_dagster() -> Path:
    return ensure_venv(
        BENCH / ".venvs" / "dagster",
        "import dagster, dagster_postgres; print(dagster.__version__)",
        DAGSTER_VERSION,
        [f"dagster=={DAGSTER_VERSION}", f"dagster-postgres=={DAGSTER_POSTGRES_VERSION}"],
        timeout=1200,
    )


def run_dagster(case: str, load: Load, workdir: Path) -> Outcome:
    out = Outcome(case=case, tool=f"Dagster {DAGSTER_VERSION}")
    python = ensure_dagster()
    home = workdir / case
    (home / "dagster_home").mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)
    start = minute_boundary(now + dt.timedelta(seconds=70))
    steady = [steady_cron(start, load.period, k) for k in range(load.period)]
    if load.period == 1:
        steady = ["* * * * *"]
    burst_at = start + dt.timedelta(minutes=min(2, load.period - 1))
    (home / "defs.py").write_text(
        DAGSTER_DEFS.format(
            schedules=load.schedules,
            burst=load.burst,
            steady=steady,
            burst_cron=burst_cron(burst_at),
        )
    )
    (home / "dagster_home" / "dagster.yaml").write_text(
        DAGSTER_YAML.format(max_running=load.max_running)
    )
    (home / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: defs.py\n      working_directory: .\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "SHIPYARD_"))}
    env["DAGSTER_HOME"] = str(home / "dagster_home")
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    log = (workdir / f"{case}-daemon.log").open("wb")
    argv = [str(python.parent / "dagster-daemon"), "run", "-w", str(home / "workspace.yaml")]
    # started 50 s before the first fire time: time to load its code location, and its
    # first iteration comes after the minute before (else the schedules of the period's
    # last minute offset fire then too, 200 runs before the window)
    wait_until(start - dt.timedelta(seconds=50))
    progress(f"{case}: dagster-daemon started; first fire time {start:%H:%M:%S}Z")
    proc = subprocess.Popen(
        argv, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    daemon = psutil.Process(proc.pid)
    end = start + dt.timedelta(minutes=load.period)
    try:
        wait_until(start - dt.timedelta(seconds=1))
        out.load = (os.getloadavg()[0], 0.0)
        cpu0 = cpu_of(daemon) + sum(cpu_of(c) for c in daemon.children())
        wait_until(end + dt.timedelta(seconds=load.grace))
        kids = [c for c in daemon.children() if "dagster" in " ".join(c.cmdline())]
        out.daemon_cpu = cpu_of(daemon) + sum(cpu_of(c) for c in kids) - cpu0
        out.load = (out.load[0], os.getloadavg()[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            stop_session(proc.pid)
            proc.wait(10)
        time.sleep(5)
        stop_session(proc.pid)  # its code server and runs still going, if any
        log.close()
    out.window = (end - start).total_seconds() + load.grace
    got = subprocess.run(
        [str(python), "-c", DAGSTER_COLLECT],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if got.returncode != 0:
        raise BenchFailed(f"{case}: reading Dagster's run storage failed:\n{got.stderr[-3000:]}")
    for run in json.loads(got.stdout).values():
        if not run["scheduled"] or not run["name"]:
            continue
        due = dt.datetime.fromisoformat(run["scheduled"]).timestamp()
        if not start.timestamp() <= due < end.timestamp():
            continue  # its first iteration also evaluates the minute it started in
        out.fires.append(
            Fire(
                group="burst" if run["name"].startswith("burst_") else "steady",
                due=due,
                recorded=run["created"],
                spawned=run.get("starting"),
                launched=run["start"],
                run_record=None,
                finished=run["end"],
                ok=None if run["end"] is None else run["status"] == "SUCCESS",
            )
        )
    out.expected = {"steady": load.schedules, "burst": load.burst}
    out.notes.append(
        "Dagster: no jitter; its scheduler daemon wakes at each minute boundary, so the "
        f"{load.schedules} schedules fire {load.schedules // load.period} at a time; runs "
        f"are queued and its run-queue daemon (every 5 s, the default) launches up to "
        f"{load.max_running}"
    )
    return out


# --------------------------------------------------------------------------- report


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def pair(values: Sequence[float]) -> str:
    if not values:
        return "—"
    return f"{fmt(percentile(values, 50))} / {fmt(percentile(values, 99))}"


def met(lags: Sequence[float], expected: int) -> bool:
    """Every fire time got there, and p99 within the goal."""
    p99 = percentile(lags, 99)
    return len(lags) == expected and p99 is not None and p99 <= GOAL_P99


def rows_of(outcome: Outcome) -> list[list[str]]:
    """A row per load (steady, burst) of the fire times the cap admitted at their fire
    time, and for shipyard one more per load of those the global cap queued (by design:
    their lag is the wait for a free slot, not the scheduler's)."""
    rows = []
    for group in ("steady", "burst"):
        everyone = [f for f in outcome.fires if f.group == group]
        expected = outcome.expected.get(group, 0)
        capped = [f for f in everyone if f.capped]
        parts = [(group, [f for f in everyone if not f.capped], expected - len(capped))]
        if outcome.tool == "shipyard":
            parts.append((f"{group}, queued by the cap", capped, len(capped)))
        for label, fires, want in parts:
            if label.endswith("cap") and not fires:
                continue

            def lags(attr: str, fires: list[Fire] = fires) -> list[float]:
                return [getattr(f, attr) - f.due for f in fires if getattr(f, attr) is not None]

            spawned, launched = lags("spawned"), lags("launched")
            goal = ""
            if outcome.tool == "shipyard" and label.endswith("cap"):
                goal = "queued (by design)"
            elif outcome.tool == "shipyard":
                goal = " · ".join(
                    f"{what}: {'yes' if met(got, want) else 'no'}"
                    for what, got in (("spawned", spawned), ("launched", launched))
                )
            rows.append(
                [
                    outcome.case,
                    label,
                    f"{len(fires)}/{expected}",
                    pair(lags("recorded")),
                    pair(spawned),
                    pair(launched),
                    pair(lags("run_record")),
                    str(len(fires) - len(launched)),
                    str(sum(1 for f in fires if f.ok)),
                    goal,
                ]
            )
    return rows


HEAD = [
    "case",
    "load",
    "fire records",
    "recorded p50 / p99",
    "spawned p50 / p99",
    "launched p50 / p99",
    "run record p50 / p99",
    "not launched",
    "succeeded by the end",
    "p99 ≤ 1 s",
]


def section(
    outcomes: list[Outcome],
    load: Load,
    described: dict[str, str],
    when: str,
    command: str,
    failures: dict[str, str],
) -> str:
    lines = [
        "## Schedules: the lag from fire time to run started, shipyard and Dagster",
        "",
        f"- When: {when}; command: `{command}`",
        (
            f"- Machine: {described['nproc']} CPUs ({described['cpu']}), {described['ram']} RAM, "
            f"Linux {described['kernel']}, Python {described['python']}; shared with other "
            f"work: 1-minute load average {described['load_start']} at the start, "
            f"{described['load_end']} at the end"
        ),
        (
            f"- Load: {load.schedules} schedules of a trivial two-step flow, each every "
            f"{load.period} min spread by jitter over the period "
            f"({load.rate:.2f} fires/s), plus {load.burst} due in the same second "
            f"{min(2, load.period - 1)} min into it; one period + {load.grace:.0f} s on the real "
            f"clock; global cap {load.max_running} runs going at once "
            f"(`--max-running`; Dagster: `run_queue.max_concurrent_runs`); shipyard's scheduler "
            f"ticks every {load.interval:g} s; the fire times the cap queued (their record says "
            "`global cap: ...`) are counted in rows of their own: the goal is for those it "
            "admitted"
        ),
        (
            "- Lags from the (jittered) fire time: *recorded* = its fire record exists "
            "(Dagster: its run record, queued); *spawned* = the tick that claimed it began "
            "(its process is spawned within that tick; `claim_expires` - 120 s; "
            "Dagster: `RUN_STARTING`, its run launcher has spawned the run's process); "
            "*launched* = that process is up and has taken its fire record (`started_at`; "
            "Dagster: `RUN_START`, the run's process executes); *run record* = `shipyard run` "
            "created the run's row (`runs.created_at`)"
        ),
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "---|" * len(HEAD),
    ]
    for outcome in outcomes:
        for row in rows_of(outcome):
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for outcome in outcomes:
        cpu = "" if outcome.daemon_cpu is None else f"; its own CPU {outcome.daemon_cpu:.1f} s"
        lines.append(
            f"- {outcome.case}: 1-minute load average {outcome.load[0]:.1f} at the first fire "
            f"time, {outcome.load[1]:.1f} at the end of the window ({outcome.window:.0f} s)"
            f"{cpu}"
        )
        lines += [f"  - {note}" for note in outcome.notes]
    for case, error in failures.items():
        lines.append(f"- {case}: failed: {error}")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(CASES), help=f"of {','.join(CASES)}")
    parser.add_argument("--schedules", type=int, default=None, help="default 1000 (60 quick)")
    parser.add_argument("--burst", type=int, default=None, help="default 100 (20 quick)")
    parser.add_argument("--period", type=int, default=None, help="minutes (5; 1 quick)")
    parser.add_argument("--grace", type=float, default=20.0, help="seconds after the period")
    parser.add_argument(
        "--max-running",
        type=int,
        default=16,
        help="the global cap (default 16, shipyard's own; 128 admits the whole burst)",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="shipyard's tick (s)")
    parser.add_argument("--quick", action="store_true", help="a small load, 1-minute period")
    parser.add_argument("--pg-url", default=os.environ.get("SHIPYARD_TEST_PG_URL"))
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw lags here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run shipyard's scheduler under cProfile; its stats go to DIR/<case>-scheduler.prof",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(CASES)
    if unknown:
        parser.error(f"--only: unknown case(s) {', '.join(sorted(unknown))}; use {CASES}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = Load(
        schedules=args.schedules or (60 if args.quick else 1000),
        burst=args.burst if args.burst is not None else (20 if args.quick else 100),
        period=args.period or (1 if args.quick else 5),
        grace=args.grace,
        max_running=args.max_running,
        interval=args.interval,
    )
    if load.period < 1 or load.period > 30 or 60 % load.period:
        raise SystemExit("--period: minutes dividing 60 (1, 2, 3, 5, 10, 15, 30)")
    described = machine(REPO)
    described["load_start"] = f"{os.getloadavg()[0]:.2f}"
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    (BENCH / ".work").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="schedules-", dir=BENCH / ".work"))
    outcomes: list[Outcome] = []
    failures: dict[str, str] = {}
    for case in args.only.split(","):
        try:
            if case.startswith("shipyard"):
                outcomes.append(run_shipyard(case, load, workdir, args.pg_url, args.profile))
            else:
                outcomes.append(run_dagster(case, load, workdir))
            progress(f"{case}: done")
        except (BenchFailed, subprocess.SubprocessError, OSError) as exc:
            failures[case] = str(exc)
            progress(f"{case}: FAILED: {exc}")
    described["load_end"] = f"{os.getloadavg()[0]:.2f}"
    words = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python bench/schedules.py", *words])
    text = section(outcomes, load, described, when, command, failures)
    print(text)
    if args.json:
        raw = {o.case: [f.__dict__ for f in o.fires] for o in outcomes}
        args.json.write_text(json.dumps(raw))
    if args.write:
        start, end = "<!-- bench:schedules:start -->", "<!-- bench:schedules:end -->"
        write_section(REPO / "BENCHMARKS.md", start, end, text, HEADER)
        progress(f"wrote the schedules section of {REPO / 'BENCHMARKS.md'}")
    if failures:
        progress(f"logs in {workdir}")
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
