"""Worker isolation: service code must not run with the host's identity.

When the host runs as root and the kernel lets it make mount namespaces, each worker, before
it imports any of the service's code, moves into a mount namespace of its own (:func:`apply`)
and builds there the view of the files the host planned for it (:class:`Plan`):

- every mount is remounted **read-only** (the venv, /etc, /proc/sys, the code snapshots and
  the blob store: a worker cannot plant code that the host, a flow or another service would
  run later);
- ``SHIPYARD_HOME`` becomes an empty read-only tmpfs into which only ``code/`` and
  ``files/`` (the materialised file artifacts; both read-only), the blob store's directory
  (read-only), the LMDB cache's directory (read-write: readers write its lock file) and
  ``cache.pub`` are bound back. ``admin.token``, ``cache.key``,
  ``meta.db`` (and its ``-wal``, ``-shm``), ``config.yaml`` and anything the host writes
  there later are simply not in the worker's view;
- the host user's home directory (``~/.ssh``, ``~/.aws``, ...) is an empty read-only tmpfs
  too, with the interpreter's own directories bound back if they live there;
- a secret file outside ``SHIPYARD_HOME`` (a SQLite metadata database elsewhere, a signing
  key that ``SHIPYARD_CACHE_SIGNING_KEY`` names by path, ``/etc/shadow``, the SSH host keys)
  is covered with ``/dev/null`` on a ``nodev`` mount: opening it is refused;
- ``/tmp`` is a fresh tmpfs of the worker's own, and ``/dev`` a tmpfs holding only ``null``,
  ``zero``, ``full``, ``random``, ``urandom``, ``tty``, GPU nodes (``nvidia*``) and a fresh
  ``shm``: no disk is reachable as a device; the working directory is ``/``;

then it drops every capability for good: the bounding set is emptied, no ambient or
inheritable capabilities remain, the securebits are locked so that exec never grants root's
capabilities again, ``no_new_privs`` is set and the process is not dumpable. Without
``CAP_SYS_ADMIN`` nothing can be unmounted; without ``CAP_SYS_PTRACE`` (the host keeps
more capabilities than the worker) ``/proc/<host pid>/root`` is refused; without
``CAP_MKNOD`` no device node can be made. A worker that cannot build its view exits before
any service code runs (fail closed).

When the host is not root, or mount namespaces are unavailable, :func:`detect` says so, and
the host logs it as a WARNING at start and shows it in ``/readyz``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.serve import _linux as linux

#: what a worker could read if nothing hid it: the admin token (it could deploy code), the
#: private cache signing key (it could sign pickles cache readers load), the metadata database
HOST_SECRETS = ("admin.token", "cache.key", "meta.db")
#: the device nodes a worker keeps
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
#: files of the system covered with /dev/null: a worker is still uid 0, which owns them
SYSTEM_SECRETS = (
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh/ssh_host_*_key",
)
_SIGNING_KEY_ENV = "SHIPYARD_CACHE_SIGNING_KEY"


class IsolationError(OSError):
    """The worker's view could not be built: the worker stops before running service code."""


@dataclass(frozen=True)
class Status:
    """Whether workers are isolated, why (not), and which host secrets they can read."""

    isolated: bool
    reason: str
    exposed: tuple[str, ...] = ()
    fix: str = "run the host as root on Linux to isolate them"

    def to_json(self) -> dict[str, Any]:
        """For ``/readyz``: ``{"isolated", "reason", "workers_can_read"}``."""
        return {
            "isolated": self.isolated,
            "reason": self.reason,
            "workers_can_read": list(self.exposed),
        }

    def message(self) -> str:
        """The line the host logs at start."""
        if self.isolated:
            return f"workers are isolated: {self.reason}"
        return (
            f"workers are NOT isolated: {self.reason}. Service code can read "
            f"{', '.join(self.exposed)} (with admin.token it can call the admin API and "
            f"deploy code); {self.fix}"
        )


@functools.cache
def detect() -> Status:
    """Can this host isolate its workers? Asked once per process: root, then a real try in a
    throw-away child (the host itself never changes namespace)."""
    if not sys.platform.startswith("linux"):
        return Status(False, f"worker isolation needs Linux; this is {sys.platform}", HOST_SECRETS)
    euid = os.geteuid()
    if euid != 0:
        return Status(
            False,
            f"the host runs as uid {euid} ({_user_name(euid)}), not root, so its workers run "
            "as the same user",
            HOST_SECRETS,
        )
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "from shipyard.serve.isolation import probe; probe()"],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "VIRTUAL_ENV")},
        )
        failed = probe.returncode != 0
        why = (probe.stderr.strip().splitlines() or [f"status {probe.returncode}"])[-1]
    except (OSError, subprocess.TimeoutExpired) as exc:
        failed, why = True, str(exc)
    if failed:
        return Status(
            False,
            f"mount namespaces are unavailable ({why})",
            HOST_SECRETS,
            fix="let the host make mount namespaces to isolate them (CAP_SYS_ADMIN; in a "
            "container, e.g. --cap-add SYS_ADMIN and a seccomp profile allowing unshare and mount)",
        )
    return Status(
        True,
        "each worker runs in its own mount namespace without admin.token, cache.key or "
        "meta.db, read-only outside its cache, with a private /tmp and /dev and no capabilities",
    )


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return "no name"


def probe() -> None:
    """Run in a throw-away child by :func:`detect`: unshare, mount, drop; exit 1 if refused."""
    try:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        _remount("/", linux.option_flags("rw"), writable=False)
        linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=1777")
        drop_privileges()
    except OSError as exc:
        print(exc.strerror or exc, file=sys.stderr)
        raise SystemExit(1) from None


@dataclass(frozen=True)
class Bind:
    """A path the worker keeps: bound back where the view hides it, read-only unless
    ``writable``."""

    path: str
    writable: bool = False


@dataclass(frozen=True)
class Plan:
    """One worker's view of the files: made by the host (:func:`plan_for`), applied by the
    worker (:func:`apply`); it travels as JSON on the worker's command line."""

    home: str
    binds: tuple[Bind, ...] = ()
    hide: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "home": self.home,
                "binds": [[b.path, b.writable] for b in self.binds],
                "hide": list(self.hide),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        return cls(
            home=data["home"],
            binds=tuple(Bind(str(p), bool(w)) for p, w in data["binds"]),
            hide=tuple(data["hide"]),
        )


def plan_for(
    home: Path,
    *,
    code_dir: Path,
    socket_dir: Path,
    store_url: str,
    cache_url: str,
    db_url: str,
    service: str | None = None,
) -> Plan:
    """The view of a worker of this host (of ``service``). Creates the directories it binds
    if missing, so that the worker and the host share them (a directory made later inside
    the worker's read-only view could not be). The one writable folder of the blob store is
    the service's own serving log (``blobs/serving-logs/<service>``: see
    ``shipyard.features.servinglog``), so a worker cannot write another's."""
    binds = [Bind(str(home / "code")), Bind(str(home / "files"))]
    binds += [Bind(str(code_dir)), Bind(str(socket_dir), True)]
    if store_url.startswith("file://"):
        from shipyard.store.blobs import open_blob_store

        root = Path(getattr(open_blob_store(store_url), "root", home / "blobs"))
        binds.append(Bind(str(root)))
        if service is not None:
            binds.append(Bind(str(root / "serving-logs" / service), True))
    for part in cache_url.split(","):
        part = part.strip()
        if part.startswith("lmdb://") and part[len("lmdb://") :]:
            binds.append(Bind(str(Path(part[len("lmdb://") :]).expanduser().absolute()), True))
    for bind in binds:
        Path(bind.path).mkdir(parents=True, exist_ok=True)
    if (home / "cache.pub").is_file():
        binds.append(Bind(str(home / "cache.pub")))
    hide = [*_sqlite_files(db_url)]
    key = os.environ.get(_SIGNING_KEY_ENV, "")
    if key.startswith("/") and "\n" not in key and Path(key).exists():
        hide.append(key)
    inside = Path(home)
    return Plan(
        home=str(home),
        binds=tuple(binds),
        hide=tuple(h for h in hide if not _under(Path(h), inside)),
    )


def _sqlite_files(db_url: str) -> Iterator[str]:
    import sqlalchemy as sa

    url = sa.make_url(db_url)
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return
    if database.startswith("file:"):
        database = database[len("file:") :].partition("?")[0]
    path = Path(database).expanduser().absolute()
    for suffix in ("", "-wal", "-shm", "-journal"):
        yield f"{path}{suffix}"


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


# -- in the worker ----------------------------------------------------------------------
def apply(plan: Plan) -> None:
    """Build ``plan``'s view in a new mount namespace and drop every capability. Call it
    first thing in the worker, before any thread starts and before any service code is
    imported. Raises :class:`IsolationError`."""
    try:
        _apply(plan)
    except OSError as exc:
        raise IsolationError(exc.errno, f"cannot isolate the worker: {exc.strerror}") from exc


def _apply(plan: Plan) -> None:
    areas = _hidden_areas(Path(plan.home))
    roots = tuple(area for area, _ in areas)
    # the interpreter and its imports must stay readable if they live in a hidden place
    keep = [*plan.binds, *(Bind(p) for p in _interpreter_paths() if _under_any(p, roots))]
    keep = sorted((b for b in keep if os.path.exists(b.path)), key=lambda b: _depth(b.path))
    hide = [*plan.hide, *_system_secrets()]
    devices = [d for d in (*DEVICES, *_gpu_devices()) if Path("/dev", d).exists()]
    modes = {area: os.stat(area).st_mode & 0o7777 for area in roots if area.is_dir()}
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    plain = linux.MS_NOSUID | linux.MS_NODEV
    with contextlib.ExitStack() as fds:
        # hold every source open (O_PATH) before anything covers it; opened in the new
        # namespace, since a bind mount's source must be a mount of the caller's namespace
        sources = {b.path: fds.enter_context(_opened(b.path)) for b in keep}
        dev = {d: fds.enter_context(_opened(f"/dev/{d}")) for d in devices}
        _read_only_everywhere()
        for area, writable in areas:  # parents first: a nested area is made in its parent
            area.mkdir(parents=True, exist_ok=True)
            mode = 0o1777 if writable else modes.get(area, 0o755)
            linux.mount("tmpfs", area, "tmpfs", plain, f"mode={mode:04o}")
        for bind in keep:
            _bind(sources[bind.path], Path(bind.path), plain, writable=bind.writable)
        for area, writable in areas:
            if not writable:
                _remount(area, plain, writable=False)
        for path in hide:
            if os.path.isfile(path):
                _bind(dev["null"], Path(path), plain | linux.MS_NOEXEC, writable=False)
            elif os.path.isdir(path):
                linux.mount("tmpfs", path, "tmpfs", plain | linux.MS_RDONLY, "mode=0555,size=4k")
        _minimal_dev(dev)
    os.chdir("/")  # a working directory inside a hidden area would still reach its files
    drop_privileges()


def _hidden_areas(home: Path) -> list[tuple[Path, bool]]:
    """The directories replaced by an empty tmpfs, parents first, and whether it is
    writable: /tmp (the worker's own), the host user's home directory (its ~/.ssh, ~/.aws,
    shell history), SHIPYARD_HOME."""
    areas = {Path("/tmp"): True, home: False}
    for user_home in (_user_home(), os.environ.get("HOME")):
        if user_home and Path(user_home).is_dir() and Path(user_home).resolve() != Path("/"):
            areas.setdefault(Path(user_home).resolve(), False)
    return sorted(areas.items(), key=lambda item: _depth(item[0]))


def _user_home() -> str | None:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_dir
    except (ImportError, KeyError):
        return None


def _system_secrets() -> list[str]:
    """Files of the system that root owns and a worker, still uid 0, could read by owning."""
    found = []
    for pattern in SYSTEM_SECRETS:
        found += [str(p) for p in Path("/").glob(pattern.lstrip("/"))]
    return found


def _depth(path: str | Path) -> int:
    return len(Path(path).parts)


def _interpreter_paths() -> list[str]:
    paths = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent)}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return sorted(paths)


def _under_any(path: str, roots: tuple[Path, ...]) -> bool:
    return any(_under(Path(path), root) for root in roots)


def _gpu_devices() -> list[str]:
    with contextlib.suppress(OSError):
        return sorted(p.name for p in Path("/dev").glob("nvidia*") if p.is_char_device())
    return []


@contextlib.contextmanager
def _opened(path: str) -> Iterator[str]:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _read_only_everywhere() -> None:
    for point, options in linux.mounts():
        if not os.path.exists(point):
            continue
        try:
            _remount(point, linux.option_flags(options), writable=False)
        except OSError:
            # a mount below /dev is covered by the worker's own /dev; anything else that
            # stays writable would be a way out
            if not _under(Path(point), Path("/dev")):
                raise


def _remount(point: str | Path, flags: int, *, writable: bool) -> None:
    flags = (flags & ~linux.MS_RDONLY) | (0 if writable else linux.MS_RDONLY)
    linux.mount(None, point, None, linux.MS_REMOUNT | linux.MS_BIND | flags)


def _bind(source: str, target: Path, flags: int, *, writable: bool) -> None:
    if not target.exists() and not target.is_symlink():
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(source):
            target.mkdir()
        else:
            target.touch()
    linux.mount(source, target, None, linux.MS_BIND | linux.MS_REC)
    _remount(target, flags, writable=writable)


def _minimal_dev(devices: dict[str, str]) -> None:
    dev = Path("/dev")
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=0755,size=64k")
    for name, source in devices.items():
        _bind(source, dev / name, linux.MS_NOSUID | linux.MS_NOEXEC, writable=True)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        (dev / name).symlink_to(target)
    (dev / "shm").mkdir()
    linux.mount("tmpfs", dev / "shm", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=1777")
    _remount(dev, linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV, writable=False)


def drop_privileges() -> None:
    """Drop every capability of this (single-threaded) process for good, and check it."""
    status = linux.process_status()
    if status.get("Threads") != "1":
        raise OSError(0, f"{status.get('Threads')} threads: isolate before any thread starts")
    linux.prctl(linux.PR_SET_SECUREBITS, linux.SECURE_BITS)
    for capability in range(linux.last_capability() + 1):
        linux.prctl(linux.PR_CAPBSET_DROP, capability)
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)
    linux.clear_capabilities()
    status = linux.process_status()
    left = [
        name for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb") if int(status[name], 16)
    ]
    if left or status.get("NoNewPrivs") != "1":
        raise OSError(0, f"capabilities left after dropping them: {left or 'no_new_privs'}")


__all__ = [
    "DEVICES",
    "HOST_SECRETS",
    "SYSTEM_SECRETS",
    "Bind",
    "IsolationError",
    "Plan",
    "Status",
    "apply",
    "detect",
    "drop_privileges",
    "plan_for",
    "probe",
]
