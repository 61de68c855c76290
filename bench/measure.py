"""Measure a command as a whole process tree, describe the machine, update BENCHMARKS.md.

Shared by the scripts in bench/ (run them with /work/main/.venv/bin/python, which has psutil):

- :func:`run_measured` runs one command in its own session and returns its wall time, the
  CPU-seconds of the whole tree (``os.wait4``: user + sys of the process and of every
  descendant it reaped), and the peak memory of the tree, sampled from this (driver)
  process as the sum over the tree of RSS (every ~20 ms) and of PSS (every ~100 ms). RSS
  counts a page shared by forked processes once per process; PSS splits it between them,
  so PSS is the fair number for a tool that forks its tasks, RSS the one the issue asks for.
- :func:`import_cost` measures ``import X`` with ``-X importtime`` and by wall time.
- :func:`machine` says what this machine is; :func:`write_section` replaces one marked
  section of a markdown file, leaving the rest alone.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MB = 1024 * 1024


@dataclass
class Measured:
    """What :func:`run_measured` saw of one command."""

    argv: list[str]
    returncode: int
    wall: float  # seconds, from just before the fork to the reap of the top process
    cpu: float  # user + sys seconds of the process and all descendants it reaped
    peak_rss: int  # bytes, max over samples of the sum of RSS over the tree
    peak_pss: int  # bytes, same with PSS (shared pages split between sharers)
    max_procs: int  # the most processes seen in the tree at once
    samples: int
    sampler_cpu: float  # CPU-seconds the driver spent sampling (not in ``cpu``)
    timed_out: bool
    leftovers: list[int] = field(default_factory=list)  # pids still in the session at exit
    stdout: Path | None = None
    stderr: Path | None = None

    @property
    def ok(self) -> bool:
        """Whether the command exited 0 within its timeout."""
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the command's stderr and stdout, for error messages."""
        out = []
        for path in (self.stderr, self.stdout):
            if path is not None and path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                if text:
                    out.append(f"--- {path.name} (last {len(text)} lines) ---")
                    out.extend(text)
        return "\n".join(out)


_HAS_CHILDREN_FILE = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def _tree(root: int) -> list[int]:
    """``root`` and its descendants, read from /proc (cheaper than psutil's full scan)."""
    if not _HAS_CHILDREN_FILE:
        try:
            proc = psutil.Process(root)
            return [root, *(child.pid for child in proc.children(recursive=True))]
        except psutil.Error:
            return []
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue  # exited
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    stack.extend(int(child) for child in f.read().split())
            except OSError:
                continue
    return found


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss(pids: Sequence[int]) -> int:
    """Sum of RSS in bytes over ``pids`` (statm: cheap enough for every tick)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue  # exited between listing and reading
    return total


def _pss(pids: Sequence[int]) -> int:
    """Sum of PSS in bytes over ``pids`` (smaps_rollup walks the page tables: ~0.3 ms each)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue  # exited between listing and reading, or a kernel without the file
    return total


def _session_members(sid: int) -> list[int]:
    pids = []
    for pid in psutil.pids():
        try:
            if pid != os.getpid() and os.getsid(pid) == sid:
                pids.append(pid)
        except OSError:
            continue
    return pids


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_measured(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    log_stem: Path,
    interval: float = 0.02,
    pss_every: int = 5,
) -> Measured:
    """Run ``argv`` to completion (or ``timeout`` seconds, then SIGKILL its process group).

    stdout and stderr go to ``<log_stem>.out`` / ``<log_stem>.err``. The command starts a
    new session so that whatever it leaves running can be found and ended afterwards. RSS is
    sampled every ``interval`` seconds, PSS (dearer to read) every ``pss_every`` samples.
    """
    out_path, err_path = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        peak_rss = peak_pss = max_procs = samples = 0
        timed_out = False
        try:
            while True:
                pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
                if pid:
                    break
                pids = _tree(popen.pid)
                peak_rss = max(peak_rss, _rss(pids))
                if samples % pss_every == 0:
                    peak_pss = max(peak_pss, _pss(pids))
                max_procs, samples = max(max_procs, len(pids)), samples + 1
                if time.perf_counter() - t0 > timeout:
                    timed_out = True
                    _kill_group(popen.pid)
                    pid, status, usage = os.wait4(popen.pid, 0)
                    break
                time.sleep(interval)
        except BaseException:  # Ctrl-C: the command is in its own session, so end it here
            _kill_group(popen.pid)
            os.wait4(popen.pid, 0)
            popen.returncode = -signal.SIGKILL
            raise
        wall = time.perf_counter() - t0
    popen.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    leftovers = _session_members(popen.pid)
    for pid in leftovers:  # descendants of the command we started, nothing else
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return Measured(
        argv=list(argv),
        returncode=popen.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss=peak_rss,
        peak_pss=peak_pss,
        max_procs=max_procs,
        samples=samples,
        sampler_cpu=(self_after.ru_utime + self_after.ru_stime)
        - (self_before.ru_utime + self_before.ru_stime),
        timed_out=timed_out,
        leftovers=leftovers,
        stdout=out_path,
        stderr=err_path,
    )


def run_text(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None) -> str:
    """Run a short command and return its stdout; raise RuntimeError naming it on failure."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{' '.join(argv)!r} took more than {timeout:g} s") from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)!r} exited {done.returncode}:\n{done.stderr.strip()[-2000:]}"
        )
    return done.stdout


@dataclass
class ImportCost:
    """One Python statement (``import X``) measured two ways; medians over repetitions."""

    statement: str
    importtime_ms: float  # ``-X importtime``: top-level cumulative times, minus ``pass``'s
    wall: float  # seconds for ``python -c STATEMENT``
    wall_pass: float  # seconds for ``python -c pass``, same interpreter

    @property
    def wall_delta(self) -> float:
        """What the statement adds to an interpreter start, in seconds."""
        return self.wall - self.wall_pass


_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s*\|\s*(\d+)\s*\|(\s*)(\S+)")


def _importtime_total_ms(stderr: str) -> float:
    """Sum of the cumulative times of the top-level imports in ``-X importtime`` output.

    Top-level entries have one space after the bar; nested ones are indented further and
    are already inside their parent's cumulative time. Lazy imports that a statement like
    ``from X import Y`` triggers after ``X`` itself loaded show up as top-level entries of
    their own, so summing catches them too.
    """
    total = 0
    for line in stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match and len(match.group(3)) == 1:
            total += int(match.group(2))
    return total / 1000


def _importtime_ms(
    python: Path, code: str, env: Mapping[str, str], cwd: Path, timeout: float
) -> float:
    done = subprocess.run(
        [str(python), "-X", "importtime", "-c", code],
        capture_output=True, text=True, timeout=timeout, env=dict(env), cwd=cwd,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{python} -c {code!r} failed:\n{done.stderr[-2000:]}")
    return _importtime_total_ms(done.stderr)


def _wall(python: Path, code: str, env: Mapping[str, str], cwd: Path, timeout: float) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [str(python), "-c", code], check=True, timeout=timeout, env=dict(env), cwd=cwd,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - t0


def import_cost(
    python: Path,
    statement: str,
    *,
    reps: int,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 120,
) -> ImportCost:
    """Median ``-X importtime`` total and wall time of ``python -c STATEMENT``, over ``pass``.

    Runs of the statement and of ``pass`` are interleaved, so that drift hits both alike.
    """
    times, times_pass, walls, walls_pass = [], [], [], []
    for _ in range(reps):
        times_pass.append(_importtime_ms(python, "pass", env, cwd, timeout))
        times.append(_importtime_ms(python, statement, env, cwd, timeout))
    for _ in range(reps):
        walls_pass.append(_wall(python, "pass", env, cwd, timeout))
        walls.append(_wall(python, statement, env, cwd, timeout))
    return ImportCost(
        statement=statement,
        importtime_ms=statistics.median(times) - statistics.median(times_pass),
        wall=statistics.median(walls),
        wall_pass=statistics.median(walls_pass),
    )


def _mount_of(path: Path) -> tuple[str, str, str]:
    best = ("?", "/", "?")
    real = str(path.resolve())
    with open("/proc/mounts") as mounts:
        for line in mounts:
            device, mount, fstype = line.split()[:3]
            inside = real == mount or real.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best[1]):
                best = (device, mount, fstype)
    return best


def machine(workdir: Path) -> dict[str, str]:
    """nproc, CPU model, RAM, kernel, and the disk that holds ``workdir``."""
    model = "?"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    device, mount, fstype = _mount_of(workdir)
    stat = os.statvfs(workdir)
    size_gb = stat.f_blocks * stat.f_frsize / 1e9
    free_gb = stat.f_bavail * stat.f_frsize / 1e9
    rotational = "?"
    block = Path("/sys/block") / Path(device).name / "queue" / "rotational"
    if block.exists():
        rotational = block.read_text().strip()
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "disk": (
            f"{device} ({fstype}, rotational={rotational}) mounted on {mount}, "
            f"{size_gb:.0f} GB, {free_gb:.0f} GB free"
        ),
    }


def write_section(path: Path, start: str, end: str, body: str, header: str) -> None:
    """Put ``body`` between the ``start`` and ``end`` marker lines of ``path``.

    Creates the file with ``header`` if missing and appends the section if the markers are
    not there yet; everything outside the markers is kept byte for byte. Written atomically.
    """
    text = path.read_text() if path.exists() else header.rstrip("\n") + "\n"
    section = f"{start}\n{body.strip()}\n{end}"
    i, j = text.find(start), text.find(end)
    if i != -1 and j != -1 and j > i:
        text = text[:i] + section + text[j + len(end) :]
    elif i == -1 and j == -1:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        raise RuntimeError(
            f"{path}: found only one of the markers {start!r} / {end!r}; fix by hand"
        )
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- live process trees
# For long-running servers that bench/serve.py starts and measures while they run (the
# functions above measure a command from fork to exit).

_TICKS = os.sysconf("SC_CLK_TCK")


def tree_pids(root: int) -> list[int]:
    """``root`` and every process below it, as /proc shows them now."""
    return _tree(root)


def tree_cpu(pids: Sequence[int]) -> float:
    """User + system CPU-seconds used so far by ``pids`` (all their threads; /proc/PID/stat).

    A process that exited between the listing and the read counts as 0: take the difference
    of two calls over the same live processes.
    """
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICKS


def tree_memory(pids: Sequence[int]) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in bytes over ``pids``."""
    return _rss(pids), _pss(pids)
