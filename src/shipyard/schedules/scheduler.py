"""The scheduler: on each tick, record the due fire times and start their runs.

>>> scheduler = Scheduler(ScheduleStore(MetaStore.open()))        # doctest: +SKIP
>>> scheduler.tick()          # or scheduler.serve(stop) to tick every second until stopped

A tick, by the scheduler holding the lease (one at a time per database; the others stand by
and take over when it stops renewing):

1. **plan**: for each live schedule, the fire times after its cursor that are due by now
   (jitter included) become ``schedule_fires`` rows, to run or skipped with their reason
   (``catchup``; a paused schedule's are skipped, ``paused: <note>``), and the cursor moves
   past them, in one transaction; then the
   events published and the runs finished since the last tick become the rows of the
   schedules whose ``@trigger`` / ``@trigger_on_finish`` match (:mod:`shipyard.schedules.feed`);
2. **dispatch**: rows that are pending, queued, or claimed by a scheduler that died (its
   claim expired) are locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and decided:
   skipped or queued (``overlap``, the global cap), or claimed with a fresh token;
3. **start**: each claimed row is handed to the starter, which has its launcher
   (:mod:`shipyard.schedules.launch`) forked by the spawner, a fresh process of its own
   (:class:`Spawner`; written to its pipe, not waited for); the launcher takes the claim
   with its token.

A tick reads the schedules' rows, and their versions only when a row changed
(:meth:`ScheduleStore.live`); it does not walk a schedule's cron before its next fire time
is due (``_due``).

Time comes from ``clock`` (injectable: tests drive hours of schedules in milliseconds) and
runs are started by ``starter`` (the default spawns processes).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shipyard._proc import pid_alive
from shipyard.schedules.cron import Cron
from shipyard.schedules.feed import Feed
from shipyard.schedules.plan import next_due, paused_fires, plan_fires
from shipyard.schedules.records import FireKind, FireRecord, FireStatus, ScheduleRecord
from shipyard.schedules.store import LIVE, ScheduleCache, ScheduleStore, _fire, fire_row
from shipyard.store.records import RunStatus
from shipyard.store.schema import runs, schedule_fires

log = logging.getLogger("shipyard.scheduler")

Clock = Callable[[], datetime]
#: starts the run of a claimed fire record; the default spawns a process
Starter = Callable[[FireRecord, str], None]

#: default cap on scheduled runs going at once (the rest are queued)
MAX_RUNNING = 16
#: ``serve`` wakes early for a fire time due before its next tick, but waits at least this
#: long (seconds) after a tick for it
MIN_GAP = 0.2


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TickResult:
    """What one tick did (for tests, logs and metrics)."""

    leader: bool = False
    recorded: int = 0
    started: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    #: events read for the first time by this scheduler (their sources)
    events: list[str] = field(default_factory=list)
    #: (schedule, status, reason kind) of each fire time skipped or queued in this tick
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)


def reason_kind(reason: str | None) -> str:
    """A short, bounded label for a skip or queue reason (the reasons themselves name runs):
    ``overlap``, ``paused``, ``cap``, ``backfill``, ``deleted``, ``missed``, ``payload``,
    ``other``."""
    text = reason or ""
    for prefix, kind in (
        ("overlap=", "overlap"),
        ("paused", "paused"),
        ("global cap", "cap"),
        ("backfill", "backfill"),
        ("the schedule was deleted", "deleted"),
        ("missed", "missed"),
        ("payload has no field", "payload"),
    ):
        if text.startswith(prefix):
            return kind
    return "other"


class Scheduler:
    """Ticks schedules. One per process; several may share a database (see the module)."""

    def __init__(
        self,
        store: ScheduleStore,
        *,
        clock: Clock = utc_now,
        starter: Starter | None = None,
        holder: str | None = None,
        lease_ttl: timedelta = timedelta(seconds=15),
        claim_ttl: timedelta = timedelta(seconds=120),
        max_running: int = MAX_RUNNING,
        use_lease: bool = True,
        batch: int = 200,
        announce: Callable[[str], None] | None = None,
        feed: Feed | None = None,
        observe: Callable[[TickResult], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        #: (name, version, cursor) -> when its next fire time is due: a schedule is not
        #: planned again before then (walking its cron every tick was most of a tick's CPU)
        self._due: dict[tuple[str, int, datetime], datetime] = {}
        #: the schedules as read last: a tick reads their rows, and their versions only
        #: when a row changed (reading them all every tick was most of a tick's CPU)
        self._cache = ScheduleCache()
        #: the soonest instant a known fire time is due (see :meth:`serve`)
        self._wake: datetime | None = None
        self.starter: Starter = starter or spawn_launcher(store)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.lease_ttl, self.claim_ttl = lease_ttl, claim_ttl
        self.max_running, self.use_lease, self.batch = max_running, use_lease, batch
        self.leader: bool | None = None  # not known before the first tick
        self.announce = announce or log.info
        self._crons: dict[str, Cron] = {}
        self.feed = feed or Feed()
        if self.feed.dead_after is None:
            self.feed.dead_after = store.meta.dead_after
        #: called with each tick's result (the host counts skips, queues and events)
        self.observe = observe

    # --- one tick ---------------------------------------------------------------------------
    def tick(self) -> TickResult:
        """Plan, dispatch and start once; does nothing (``leader=False``) without the lease."""
        now = self.clock()
        result = TickResult()
        self._wake = None
        reap = getattr(self.starter, "reap", None)
        if reap is not None:
            reap()
        if self.use_lease:
            was = self.leader
            self.leader = self.store.acquire_lease(self.holder, ttl=self.lease_ttl, now=now)
            if self.leader != was:
                self._tell(was)
            if not self.leader:
                return result
        result.leader = True
        schedules = self.store.live(self._cache)
        moves = [m for m in (self._plan(record, now) for record in schedules) if m is not None]
        # when the next fire time not recorded yet is due (a schedule that just fired has its
        # next one found at the next tick); keys of cursors moved elsewhere do not count
        self._wake = min(
            (
                due
                for r in schedules
                if (due := self._due.get((r.name, r.version, r.cursor))) is not None
            ),
            default=None,
        )
        if moves:
            result.recorded = self.store.advance(moves)
            for name, _old, _new, rows in moves:
                for row in rows:
                    if row["status"] == FireStatus.SKIPPED.value:
                        result.outcomes.append((name, row["status"], reason_kind(row["reason"])))
        with self.store.writer.begin() as conn:  # events and finished runs
            fed = self.feed.read(conn, schedules, now)
        self.feed.done(fed)  # committed: now they count as seen
        result.recorded += fed.inserted
        result.events = [e.source for e in fed.events]
        for row in fed.rows:
            if row["status"] == FireStatus.SKIPPED.value:
                result.outcomes.append((row["schedule"], row["status"], "payload"))
        claimed = self._dispatch(now, {s.name: s for s in schedules}, result)
        for fire, token in claimed:
            try:
                self.starter(fire, token)
                result.started.append(fire.id)
            except Exception as exc:  # a spawn that failed: say so on the record
                log.exception("could not start fire %s of %s", fire.id, fire.schedule)
                self.store.set_status(
                    fire.id, FireStatus.ERROR, f"could not start: {exc}", now=self.clock()
                )
                result.errors.append(fire.id)
        if self.observe is not None:
            try:
                self.observe(result)
            except Exception:
                log.exception("could not count the tick's outcomes")
        return result

    def _tell(self, was: bool | None) -> None:
        if self.leader:
            self.announce(
                f"scheduler {self.holder}: holds the lease, ticks schedules (at most "
                f"{self.max_running} scheduled runs at once)"
            )
            return
        held = self.store.lease()
        who = f"{held[0]} (lease until {held[1]:%H:%M:%S}Z)" if held else "another scheduler"
        self.announce(
            f"scheduler {self.holder}: {who} runs this database's schedules; this one stands "
            "by (one scheduler per database) and takes over if that one stops"
        )

    def _cron(self, expr: str) -> Cron:
        cron = self._crons.get(expr)
        if cron is None:
            cron = self._crons[expr] = Cron.parse(expr)
        return cron

    def _plan(
        self, record: ScheduleRecord, now: datetime
    ) -> tuple[str, datetime, datetime, list[dict[str, Any]]] | None:
        """The fire rows of ``record``'s due fire times, and its new cursor."""
        version = record.current
        if version.cron is None or record.cursor >= now:
            return None
        key = (record.name, record.version, record.cursor)
        due = self._due.get(key)
        if due is not None and due > now:
            return None
        cron = self._cron(version.cron)
        if record.paused:  # each fire time while paused: a skip, "paused: <note>"
            planned, cursor = paused_fires(cron, version.timezone, record.cursor, now, record.note)
        else:
            planned, cursor = plan_fires(
                record.name, cron, version.timezone, version.policies, record.cursor, now
            )
        if not planned:
            if len(self._due) > 100_000:  # keys of cursors moved by others, versions gone
                self._due.clear()
            due = next_due(record.name, cron, version.timezone, version.policies, record.cursor)
            if due is not None:
                self._due[key] = due
            return None
        self._due.pop(key, None)  # the cursor moves on
        rows = [
            fire_row(
                schedule=record.name,
                version=record.version,
                kind=FireKind.SCHEDULE,
                scheduled_for=p.scheduled_for,
                due_at=p.due_at,
                status=p.status,
                reason=p.reason,
                now=now,
            )
            for p in planned
        ]
        return record.name, record.cursor, cursor, rows

    # --- dispatch ---------------------------------------------------------------------------
    def _candidates(self, conn: sa.Connection, now: datetime) -> list[FireRecord]:
        c = schedule_fires.c
        query = (
            sa.select(schedule_fires)
            .where(
                sa.or_(
                    sa.and_(
                        c.status.in_([FireStatus.PENDING.value, FireStatus.QUEUED.value]),
                        c.due_at <= now,
                    ),
                    sa.and_(c.status == FireStatus.CLAIMED.value, c.claim_expires < now),
                )
            )
            .order_by(c.due_at, c.id)
            .limit(self.batch)
        )
        if self.store.postgres:
            query = query.with_for_update(skip_locked=True)
        return [_fire(r) for r in conn.execute(query)]

    def _live(self, conn: sa.Connection, now: datetime) -> dict[str, list[FireRecord]]:
        """Fire records whose run may still be going, by schedule."""
        c = schedule_fires.c
        rows = conn.execute(
            sa.select(schedule_fires, runs.c.status.label("run_status"), runs.c.heartbeat_at)
            .outerjoin(runs, runs.c.run_id == c.run_id)
            .where(c.status.in_(LIVE), c.finished_at.is_(None))
        ).all()
        cutoff = now - self.store.meta.dead_after
        live: dict[str, list[FireRecord]] = {}
        here = socket.gethostname()
        for row in rows:
            fire = _fire(row)
            if fire.status == FireStatus.CLAIMED:
                going = fire.claim_expires is not None and fire.claim_expires >= now
            elif fire.host == here and fire.pid is not None:
                going = pid_alive(fire.pid)  # its launcher records the end when the run ends
            elif fire.run_id is None:  # started elsewhere, run not created yet (or never)
                going = fire.started_at is not None and now - fire.started_at < self.claim_ttl
            else:
                going = row.run_status == RunStatus.RUNNING.value and (
                    row.heartbeat_at is not None and row.heartbeat_at >= cutoff
                )
            if going:
                live.setdefault(fire.schedule, []).append(fire)
        return live

    def _dispatch(
        self, now: datetime, by_name: dict[str, ScheduleRecord], result: TickResult
    ) -> list[tuple[FireRecord, str]]:
        claimed: list[tuple[FireRecord, str]] = []
        with self.store.writer.begin() as conn:
            candidates = self._candidates(conn, now)
            if not candidates:
                return []
            live = self._live(conn, now)
            cancels: list[int] = []
            for fire in candidates:
                running = sum(len(v) for v in live.values())
                status, reason = self._decide(
                    fire, by_name.get(fire.schedule), live, running, cancels
                )
                if status == FireStatus.CLAIMED:
                    if reason is None and fire.status == FireStatus.QUEUED and fire.reason:
                        reason = f"waited: {fire.reason}"  # its history keeps why it waited
                    token = secrets.token_hex(16)
                    done = conn.execute(
                        schedule_fires.update()
                        .where(
                            schedule_fires.c.id == fire.id,
                            schedule_fires.c.status == fire.status.value,
                            _same_token(fire.claim_token),
                        )
                        .values(
                            status=FireStatus.CLAIMED.value,
                            claim_token=token,
                            claimed_by=self.holder,
                            claim_expires=now + self.claim_ttl,
                            reason=reason,
                        )
                    )
                    if done.rowcount:
                        claimed.append((fire, token))
                        live.setdefault(fire.schedule, []).append(fire)
                    continue
                if status == fire.status and reason == fire.reason:
                    continue  # still queued for the same reason
                values: dict[str, Any] = {"status": status.value, "reason": reason}
                if status == FireStatus.SKIPPED:
                    values["finished_at"] = now
                conn.execute(
                    schedule_fires.update()
                    .where(
                        schedule_fires.c.id == fire.id,
                        schedule_fires.c.status == fire.status.value,
                    )
                    .values(**values)
                )
                (result.skipped if status == FireStatus.SKIPPED else result.queued).append(fire.id)
                result.outcomes.append((fire.schedule, status.value, reason_kind(reason)))
            if cancels:
                self.store.request_cancel(sorted(set(cancels)), now=now, conn=conn)
        return claimed

    def _decide(
        self,
        fire: FireRecord,
        record: ScheduleRecord | None,
        live: dict[str, list[FireRecord]],
        running: int,
        cancels: list[int],
    ) -> tuple[FireStatus, str | None]:
        if record is None:
            return FireStatus.SKIPPED, "the schedule was deleted"
        if fire.status == FireStatus.CLAIMED:  # its scheduler died before its run started
            return FireStatus.CLAIMED, f"taken over from {fire.claimed_by} (claim expired)"
        if record.paused and fire.kind != FireKind.MANUAL:
            return FireStatus.SKIPPED, f"paused: {record.note or 'no note'}"
        mine = [f for f in live.get(fire.schedule, []) if f.id != fire.id]
        if fire.kind == FireKind.BACKFILL:
            limit = int(fire.trigger.get("max_parallel") or 1)
            going = [f for f in mine if f.kind == FireKind.BACKFILL]
            if len(going) >= limit:
                return FireStatus.QUEUED, f"backfill: {len(going)} running (--max-parallel {limit})"
        elif fire.kind != FireKind.MANUAL and mine:
            overlap = record.current.policies.overlap
            previous = ", ".join(_what(f, record.flow_name) for f in mine)
            if overlap == "skip":
                return FireStatus.SKIPPED, f"overlap=skip: {previous} still running"
            if overlap == "queue":
                return FireStatus.QUEUED, f"overlap=queue: waiting for {previous}"
            if overlap == "cancel-previous":
                # ask the previous runs' launchers (on whichever host) to stop them; this
                # fire time waits until they have ended: never two runs at once
                cancels.extend(f.id for f in mine)
                return FireStatus.QUEUED, f"overlap=cancel-previous: stopping {previous}"
        if running >= self.max_running:
            return FireStatus.QUEUED, (
                f"global cap: {running} scheduled runs going (max_running={self.max_running})"
            )
        return FireStatus.CLAIMED, None

    # --- the loop ---------------------------------------------------------------------------
    def serve(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds (aligned to the clock's seconds) until ``stop``,
        and in between when a fire time is due (:data:`MIN_GAP` after a tick at the
        soonest; at once if it fell due while the tick ran)."""
        warm = getattr(self.starter, "warm", None)
        if warm is not None:
            try:
                warm()  # the spawner imports while the first ticks go
            except Exception:
                log.exception("could not start the spawner; it is tried again at a fire")
        again: datetime | None = None  # the instant the loop ticked again at once for
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except Exception:  # a database hiccup must not end the scheduler
                    log.exception("scheduler tick failed; trying again")
                now = self.clock()
                wait = interval - (now.timestamp() % interval)
                soonest = self._wake
                if soonest is not None and soonest <= now and soonest != again:
                    # due since the tick began (it began just before the instant): now, not
                    # at the next whole second (once: a fire time the tick did not record
                    # waits for the next one)
                    wait, again = 0.0, soonest
                elif soonest is not None:  # a fire time due before the next tick: wake for it
                    wait = min(wait, max((soonest - now).total_seconds(), MIN_GAP))
                stop.wait(max(wait, 0.01))
        finally:
            if self.use_lease and self.leader is True:
                try:
                    self.store.release_lease(self.holder)
                except Exception:
                    log.exception("could not release the scheduler lease")


def _same_token(token: str | None) -> sa.ColumnElement[bool]:
    column = schedule_fires.c.claim_token
    return column.is_(None) if token is None else column == token


def _what(fire: FireRecord, flow_name: str) -> str:
    return f"{flow_name}/{fire.run_id}" if fire.run_id else f"fire {fire.id}"


class Launched:
    """A launcher the spawner forked (its child, not ours): enough of a
    :class:`subprocess.Popen` to wait for it and to stop it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None if pid_alive(self.pid) else 0

    def send_signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"launcher {self.pid}", timeout)
            time.sleep(0.02)
        return 0


#: how long (seconds) the scheduler waits for the spawner to say it forked a launcher
SPAWNER_REPLY = 10.0
#: ... the first time, while a new spawner imports (slow on a loaded machine)
SPAWNER_START = 60.0


@dataclass
class _Request:
    """A fire sent to the spawner, not answered yet."""

    fire: FireRecord
    token: str
    env: dict[str, str]
    sent: float  # time.monotonic() when sent (again)
    tries: int = 1


class Spawner:
    """The default starter. Each fire's launcher (:mod:`shipyard.schedules.launch`) is forked
    by the spawner (``python -m shipyard.cli.spawner``), a fresh single-threaded process this
    starts on first use (never a fork of the scheduler's process) and restarts when it died;
    a fire it could not take is started as ``python -m shipyard.schedules.launch FIRE TOKEN``
    (``forking=False``: always so). Keeps the launchers to reap them (no zombies in a
    long-running host) and to wait for them.

    A fire is written to the spawner's pipe and not waited for: its answer (the launcher's
    pid) is read at the next :meth:`reap` (each tick), so a tick that claims a hundred fires
    does not wait for a hundred forks, one after another. A fire the spawner has not answered
    when it died, or within :data:`SPAWNER_REPLY` seconds, is sent again to a new spawner
    once (the claim token keeps it from starting twice), then started as a launcher process.
    """

    def __init__(
        self,
        store: ScheduleStore,
        env: Callable[[], dict[str, str]] | None = None,
        *,
        forking: bool = True,
    ) -> None:
        self.db_url = store.writer.url.render_as_string(hide_password=False)
        self.env = env  # the runs' environment (None: this process's)
        self.forking = forking
        self.children: list[subprocess.Popen[bytes] | Launched] = []
        #: the spawner process, once started
        self.server: subprocess.Popen[bytes] | None = None
        self._answered = False  # the spawner has answered once (it is up)
        #: fires sent to the spawner and not answered yet, by fire id
        self.pending: dict[int, _Request] = {}
        self._replies = b""  # what the spawner wrote after its last whole line
        self._sent_env: dict[str, str] | None = None  # the environment the spawner has

    def __call__(self, fire: FireRecord, token: str) -> None:
        from shipyard.schedules.launch import spawn

        self.reap()
        env = self._env()
        if self.forking:
            request = _Request(fire, token, env, time.monotonic())
            for attempt in (1, 2):  # a spawner that died is replaced once per fire
                try:
                    self._send(request)
                    self.pending[fire.id] = request
                    return
                except Exception as exc:
                    log.warning(
                        "spawner: could not start fire %s (%s); %s",
                        fire.id,
                        exc,
                        "restarting it" if attempt == 1 else "starting a launcher process",
                    )
                    request.tries += 1
                    self._replace()
        self.children.append(spawn(fire, token, env=env))

    def _env(self) -> dict[str, str]:
        env = dict(self.env() if self.env is not None else os.environ)
        env["SHIPYARD_DB_URL"] = self.db_url
        return env

    def warm(self) -> None:
        """Start the spawner now (it imports in the background) rather than at the first
        fire; :meth:`Scheduler.serve` calls this."""
        if self.forking:
            self._start_server(self._env())

    def _start_server(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        if self.server is not None and self.server.poll() is None:
            return self.server
        self._stop_server()
        self._answered = False
        self.server = subprocess.Popen(
            [sys.executable, "-m", "shipyard.cli.spawner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        return self.server

    def _send(self, request: _Request) -> None:
        """Write ``request`` to the spawner (started if it is not running); the
        environment only when it differs from the last one it was sent."""
        from shipyard.config import settings
        from shipyard.schedules.launch import log_path

        fire = request.fire
        path = log_path(settings().home, fire)
        path.parent.mkdir(parents=True, exist_ok=True)
        server = self._start_server(request.env)
        assert server.stdin is not None
        line: dict[str, Any] = {"fire": fire.id, "token": request.token, "log": str(path)}
        if request.env != self._sent_env:
            line["env"] = request.env
        server.stdin.write(json.dumps(line).encode() + b"\n")
        server.stdin.flush()
        self._sent_env = request.env

    def _read(self, timeout: float) -> bool:
        """Read the spawner's answers for up to ``timeout`` seconds (until none is pending);
        False if it ended."""
        server = self.server
        if server is None or server.stdout is None:
            return False
        fd = server.stdout.fileno()
        deadline = time.monotonic() + timeout
        while self.pending:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                return True
            chunk = os.read(fd, 65536)
            if not chunk:
                return False
            *lines, self._replies = (self._replies + chunk).split(b"\n")
            for line in lines:
                reply = json.loads(line)
                if self.pending.pop(int(reply["fire"]), None) is not None:
                    self.children.append(Launched(int(reply["pid"])))
                self._answered = True
        return True

    def collect(self, timeout: float = 0.0) -> None:
        """Take the spawner's answers (waiting up to ``timeout`` seconds for them); send the
        fires of a spawner that died or did not answer in time again to a new one, once,
        then start them as launcher processes."""
        if not self.pending:
            return
        up = self._read(timeout)
        if not self.pending:
            return
        wait = SPAWNER_REPLY if self._answered else SPAWNER_START
        late = [r for r in self.pending.values() if time.monotonic() - r.sent > wait]
        if up and self.server is not None and self.server.poll() is None and not late:
            return
        why = "ended" if not up or self.server is None else "did not answer"
        log.warning("spawner %s with %d fires not started; replacing it", why, len(self.pending))
        self._replace()

    def _replace(self) -> None:
        """Stop the spawner; send the fires it did not answer for to a new one (each fire
        twice at most, then as a launcher process)."""
        from shipyard.schedules.launch import spawn

        again, self.pending = list(self.pending.values()), {}
        self._stop_server()
        for request in again:
            request.tries += 1
            request.sent = time.monotonic()
            if request.tries <= 2:
                try:
                    self._send(request)
                    self.pending[request.fire.id] = request
                    continue
                except Exception as exc:
                    log.warning("spawner: could not start fire %s (%s)", request.fire.id, exc)
                    self._stop_server()
            self.children.append(spawn(request.fire, request.token, env=request.env))

    def _stop_server(self) -> None:
        server, self.server = self.server, None
        self._sent_env, self._replies = None, b""
        if server is None:
            return
        if server.poll() is None:
            server.kill()
        server.wait()
        for stream in (server.stdin, server.stdout):
            if stream is not None:
                stream.close()

    def reap(self) -> None:
        """Take the spawner's answers, and forget the children that have exited (and
        collect their exit status)."""
        self.collect()
        self.children = [c for c in self.children if c.poll() is None]

    def close(self, timeout: float = 10.0) -> None:
        """Stop the spawner (once it has answered for the fires sent to it) and wait up to
        ``timeout`` seconds for the launchers (they keep running after)."""
        deadline = time.monotonic() + timeout
        self.collect(timeout)
        server, self.server = self.server, None
        self._sent_env = None
        if server is not None:
            if server.stdin is not None:
                server.stdin.close()  # the spawner ends at the end of its input
            try:
                server.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            if server.stdout is not None:
                server.stdout.close()
        for child in self.children:
            try:
                child.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                pass
        self.reap()


def spawn_launcher(store: ScheduleStore) -> Spawner:
    """The default starter (see :class:`Spawner`)."""
    return Spawner(store)


__all__ = [
    "MAX_RUNNING",
    "SPAWNER_REPLY",
    "SPAWNER_START",
    "Clock",
    "Launched",
    "Scheduler",
    "Spawner",
    "Starter",
    "TickResult",
    "reason_kind",
    "spawn_launcher",
    "utc_now",
]
