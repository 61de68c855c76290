"""Start one scheduled run as a fresh process: ``python -m shipyard.schedules.launch FIRE TOKEN``.

The scheduler spawns this (never forks itself: the host has threads and an event loop). It

1. takes the fire record's claim with ``TOKEN`` (if another scheduler took it over, it
   exits without running anything: the run starts exactly once);
2. extracts the schedule version's code snapshot to ``$SHIPYARD_HOME/code/<key>/`` and runs
   ``python -m shipyard run <snapshot>/<flow file>`` there with the version's parameters
   (overridden by the fire's), ``--executor`` as the schedule says, and the trigger
   (``current.trigger``), as the user running the scheduler;
3. links the run to the fire record as soon as its id is known, waits for it, records the
   exit code, and pauses the schedule after ``pause_on_failure`` failed runs in a row.

``overlap="cancel-previous"``: the scheduler that dispatches the next fire time (on any
host) records a cancel request on this fire's row; this process polls it every
:data:`CANCEL_POLL` seconds while its run goes and SIGTERMs the run, which ends as killed.
A SIGTERM sent to this process is passed on to the run too.
Started by the spawner (:mod:`shipyard.schedules.spawner`), it is a fork of that process
and forks the run too, with the ``shipyard`` command in-process instead of a second
interpreter. Its output goes to ``$SHIPYARD_HOME/logs/schedules/<schedule>/<fire id>.log``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.schedules.records import FireRecord, VersionRecord
from shipyard.schedules.store import ScheduleStore

#: exit codes that do not count as failures for pause_on_failure: success, killed
_NOT_FAILED = (0, 130, -signal.SIGTERM)
#: how often (seconds) the launcher looks for a cancel request on its fire's row
CANCEL_POLL = 0.5


def _now() -> datetime:
    return datetime.now(UTC)


def log_path(home: Path, fire: FireRecord) -> Path:
    return home / "logs" / "schedules" / fire.schedule / f"{fire.id}.log"


def spawn(
    fire: FireRecord,
    token: str,
    *,
    db_url: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the launcher of ``fire`` in its own session; returns at once. ``env``: the
    run's environment (default: this process's)."""
    from shipyard.config import settings

    home = settings().home
    path = log_path(home, fire)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if env is None else env)
    if db_url:
        env["SHIPYARD_DB_URL"] = db_url
    argv = [sys.executable, "-m", "shipyard.schedules.launch", str(fire.id), token]
    with path.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def trigger_of(fire: FireRecord) -> dict[str, Any]:
    """``current.trigger`` of the fire's run."""
    data: dict[str, Any] = {
        "type": fire.kind.value,
        "schedule": fire.schedule,
        "schedule_version": fire.version,
        "fire_id": fire.id,
        "scheduled_for": fire.scheduled_for.isoformat() if fire.scheduled_for else None,
    }
    data.update({k: v for k, v in fire.trigger.items() if k != "max_parallel"})
    return data


def param_args(values: dict[str, Any]) -> list[str]:
    """``--name value`` options for the run command (as Runner passes them)."""
    argv: list[str] = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, list | dict):
            argv += [f"--{name}", json.dumps(value)]
        else:
            argv += [f"--{name}", str(value)]
    return argv


def run_argv(root: Path, version: VersionRecord, fire: FireRecord, id_file: Path) -> list[str]:
    argv = [sys.executable, "-m", "shipyard", "run", str(root / version.flow_file)]
    argv += ["--run-id-file", str(id_file), "--quiet"]
    argv += ["--shipyard-trigger", json.dumps(trigger_of(fire))]
    argv += ["--executor", version.policies.executor]
    return argv + param_args({**version.parameters, **fire.params})


def _check_failures(store: ScheduleStore, fire: FireRecord, version: VersionRecord) -> None:
    limit = version.policies.pause_on_failure
    if limit <= 0:
        return
    ended = [
        f
        for f in store.fires(fire.schedule, limit=limit * 4 + 20)
        if f.finished_at is not None and f.exit_code is not None
    ][:limit]
    if len(ended) < limit or any(f.exit_code in _NOT_FAILED for f in ended):
        return
    last = f"{version.flow_name}/{fire.run_id}" if fire.run_id else f"fire {fire.id}"
    note = f"paused after {limit} failed run{'s' if limit > 1 else ''} in a row (last: {last})"
    record = store.get(fire.schedule)
    if not record.paused:
        store.pause(fire.schedule, note, user="scheduler", now=_now())
        print(f"schedule {fire.schedule!r} {note}", flush=True)


def _watch(
    store: ScheduleStore, fire_id: int, proc: subprocess.Popen[bytes] | Forked, id_file: Path
) -> int:
    """Wait for the run: link it to the fire record as soon as its id is known, and SIGTERM
    it (once) when a scheduler asks for it to stop; returns its exit code."""
    linked = cancelled = False
    next_poll = time.monotonic()
    while (code := proc.poll()) is None:
        if not linked:
            text = id_file.read_text().strip() if id_file.is_file() else ""
            if "/" in text:
                store.link_run(fire_id, int(text.rsplit("/", 1)[1]))
                linked = True
        if not cancelled and time.monotonic() >= next_poll:
            next_poll = time.monotonic() + CANCEL_POLL
            try:
                cancelled = store.cancel_requested(fire_id)
            except Exception as exc:  # a database hiccup: look again at the next poll
                print(f"fire {fire_id}: could not look for a cancel request: {exc}", flush=True)
            if cancelled:
                print(f"fire {fire_id}: cancel requested (overlap=cancel-previous)", flush=True)
                proc.send_signal(signal.SIGTERM)
        time.sleep(0.02 if not linked else 0.1)
    if not linked:  # a run that ended before it was seen still gets linked
        text = id_file.read_text().strip() if id_file.is_file() else ""
        if "/" in text:
            store.link_run(fire_id, int(text.rsplit("/", 1)[1]))
    return code


class Forked:
    """The run forked from this launcher (``command`` of :func:`main`), as much of a
    :class:`subprocess.Popen` as :func:`_watch` uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)


def fork_run(command: Callable[[list[str]], int], argv: list[str], root: Path) -> Forked:
    """Run ``shipyard ARGV...`` (``argv`` without the interpreter's part) in a child forked
    from this single-threaded process, in ``root`` with ``root`` first on ``sys.path`` as
    ``python -m shipyard`` there would; its exit code is the command's."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            os.chdir(root)
            sys.path.insert(0, str(root))
            sys.argv = ["shipyard", *argv]
            code = command(argv)
            atexit._run_exitfuncs()  # as the interpreter's exit would
        except BaseException:  # noqa: BLE001 - never return into the launcher's code
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code & 0xFF)
    return Forked(pid)


def main(argv: list[str], *, command: Callable[[list[str]], int] | None = None) -> int:
    """Launch fire ``argv[0]`` with claim token ``argv[1]``. ``command``: runs ``shipyard
    ARGS...`` in-process (the spawner's); the run is then forked from this process instead
    of a second interpreter (``python -m shipyard run``)."""
    from shipyard.config import settings
    from shipyard.store.blobs import open_blob_store
    from shipyard.store.code import extract_code
    from shipyard.store.meta import MetaStore

    fire_id, token = int(argv[0]), argv[1]
    conf = settings()
    with MetaStore.open() as meta:
        store = ScheduleStore(meta)
        if not store.start(fire_id, token, pid=os.getpid(), now=_now()):
            print(
                f"fire {fire_id}: claim taken over by another scheduler; not starting", flush=True
            )
            return 0
        fire = store.fire(fire_id)
        if fire.cancel_requested_at is not None:  # cancelled before it could start
            print(f"fire {fire_id}: cancelled before its run started", flush=True)
            store.finish(fire_id, -signal.SIGTERM, now=_now())
            return 0
        version = store.version(fire.schedule, fire.version)
        try:
            data = open_blob_store(conf.store_url).get(version.code_key)
            root = extract_code(data, version.code_key, conf.home)
        except Exception as exc:
            print(f"fire {fire_id}: cannot get the code snapshot: {exc}", flush=True)
            store.finish(fire_id, 1, now=_now())
            return 1
    # the store is closed: a forked run holds none of its connections
    # not a TemporaryDirectory: its finalizer runs at exit, so a run forked from here would
    # delete the directory of the run-id file at its exit, before this process read it
    tmp = tempfile.mkdtemp(prefix="shipyard-fire-")
    try:
        id_file = Path(tmp) / "run-id"
        command_line = run_argv(root, version, fire, id_file)
        print(f"fire {fire_id}: {' '.join(command_line[2:5])} ({fire.kind.value})", flush=True)
        proc: subprocess.Popen[bytes] | Forked
        if command is not None:
            proc = fork_run(command, command_line[3:], root)
        else:
            proc = subprocess.Popen(command_line, cwd=root, stdin=subprocess.DEVNULL)

        def forward(signum: int, _frame: Any) -> None:
            proc.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        with MetaStore.open() as meta:
            store = ScheduleStore(meta)
            code = _watch(store, fire_id, proc, id_file)
            store.finish(fire_id, code, now=_now())
            fire = store.fire(fire_id)
            _check_failures(store, fire, version)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
