"""What a worker may read, tested cell by cell from inside a worker of a real host.

A deployed probe service tries each read, write and open itself and reports; the test
compares with what the files hold and with what the host said at start (``/readyz``).
README, "What a worker may read", is the matrix.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hosts import HostProcess

PROBE = '''
import hashlib, os, stat, sys, tempfile

import httpx
from shipyard import Model, cache
from shipyard.serve import Service, endpoint


def _error(exc: OSError) -> str:
    return type(exc).__name__


class Reader(Service):
    """Tries what it is asked to and reports; any host can run it."""

    @endpoint
    def read(self, paths: list[str]) -> dict[str, str]:
        """sha256 of each file, or the error opening it."""
        found = {}
        for path in paths:
            try:
                with open(path, "rb") as file:
                    found[path] = hashlib.sha256(file.read()).hexdigest()
            except OSError as exc:
                found[path] = _error(exc)
        return found

    @endpoint
    def open_rw(self, paths: list[str]) -> dict[str, str]:
        """Open each file for writing (nothing is written)."""
        found = {}
        for path in paths:
            try:
                os.close(os.open(path, os.O_RDWR))
                found[path] = "ok"
            except OSError as exc:
                found[path] = _error(exc)
        return found

    @endpoint
    def create_in(self, directories: list[str]) -> dict[str, str]:
        found = {}
        for directory in directories:
            path = os.path.join(directory, f".probe-{os.getpid()}")
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                os.unlink(path)
                found[directory] = "ok"
            except OSError as exc:
                found[directory] = _error(exc)
        return found

    @endpoint
    def admin(self, url: str, token_path: str) -> int:
        """The admin API's answer to whatever the token file gave this worker."""
        try:
            with open(token_path) as file:
                token = file.read().strip()
        except OSError:
            token = "none"  # nothing read
        headers = {"Authorization": f"Bearer {token or 'none'}"}
        return httpx.get(url + "/api/v1/deployments", headers=headers, timeout=10).status_code

    @endpoint
    def mknod(self, major: int, minor: int) -> str:
        try:
            os.mknod("/tmp/disk", stat.S_IFBLK | 0o600, os.makedev(major, minor))
            return "ok"
        except OSError as exc:
            return _error(exc)


class Probe(Reader):
    """A Reader that also uses a pinned model, the registry and the cache."""

    def load(self):
        self.pinned = Model("tiny@prod")  # pinned at deploy: its record came with the worker
        self.weights = self.pinned.load()
        self.rows = cache.reader("rows")

    @endpoint
    def facts(self) -> dict:
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        try:
            Model("no-such-model")
            missing = "found"
        except LookupError as exc:
            missing = str(exc)
        return {
            "caps": {k: int(v, 16) for k, v in status.items() if k.startswith("Cap")},
            "no_new_privs": status["NoNewPrivs"].strip(),
            "host_pid": os.getppid(),
            "pinned": self.pinned.resolve(),
            "weights": hashlib.sha256(self.weights).hexdigest(),
            "unpinned": Model("tiny:1").resolve(),
            "missing": missing,
            "rows": self.rows.get("a"),
            "own_code": hashlib.sha256(open(__file__, "rb").read()).hexdigest(),
            "code_dir": os.path.dirname(__file__),
            "registry_module": sys.modules["shipyard.registry"].__file__,
            "env": {k: os.environ.get(k) for k in ("HOME", "TMPDIR", "SHIPYARD_DB_URL")},
            "scratch": tempfile.mkdtemp(),
        }
'''

FLOW = """
import random
from shipyard import FlowSpec, step, current

class TinyFlow(FlowSpec):
    @step
    def start(self):
        # incompressible and over the inline limit: the model lives in a blob file
        current.register_model("tiny", random.Random(7).randbytes(8192))
        self.next(self.end)

    @step
    def end(self):
        pass
"""
WEIGHTS = __import__("random").Random(7).randbytes(8192)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _disk_of(path: Path) -> Path:
    """The block device holding ``path`` (or the first disk, for a path on a tmpfs)."""
    device = os.stat(path).st_dev
    entry = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    if not entry.exists():
        entry = sorted(Path("/sys/block").iterdir())[0]
    names = dict(
        line.split("=", 1) for line in (entry / "uevent").read_text().splitlines() if "=" in line
    )
    return Path("/dev") / names["DEVNAME"]


def _openable_block_devices() -> list[Path]:
    found = []
    for path in sorted(Path("/dev").iterdir()):
        if path.is_block_device():
            try:
                os.close(os.open(path, os.O_RDONLY))
            except OSError:
                continue  # not even root may (a sandbox's device policy)
            found.append(path)
    return found


def _status(host: HostProcess) -> dict[str, Any]:
    isolation: dict[str, Any] = httpx.get(host.url + "/readyz", timeout=10).json()["isolation"]
    return isolation


def _secret_files(home: Path) -> list[Path]:
    """The host's secrets, made to exist: the admin token (the host wrote it), the private
    cache signing key, the metadata database with its WAL files (the host has it open)."""
    key = home / "cache.key"
    if not key.exists():
        key.write_bytes(secrets.token_bytes(32))
        key.chmod(0o600)
    files = [
        home / "admin.token",
        key,
        home / "meta.db",
        home / "meta.db-wal",
        home / "meta.db-shm",
    ]
    for path in files:
        assert path.is_file(), f"{path} should exist on the host for this cell to mean anything"
    return files


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostProcess, Path]]:
    """A host with a registered model, a cache namespace and the probe deployed."""
    from shipyard import cache
    from shipyard.registry import Registry
    from shipyard.store.context import reset
    from shipyard.testing import run_flow

    home = tmp_path_factory.mktemp("iso") / "home"
    # the database named in the host's environment, as a deployment might: not for workers
    host = HostProcess(home, env={"SHIPYARD_DB_URL": f"sqlite:///{home}/meta.db"}).start()
    saved = os.environ.get("SHIPYARD_HOME")
    os.environ["SHIPYARD_HOME"] = str(home)
    try:
        run_flow(FLOW)
        Registry().set_alias("tiny", 1, "prod")
        with cache.writer("rows") as writer:
            writer.put("a", [1, 2, 3])
        source = home.parent / "probe_service.py"
        source.write_text(textwrap.dedent(PROBE))
        host.deploy(f"{source}:Probe", "probe", "--model", "tiny@prod")
        yield host, source
    finally:
        reset()
        if saved is None:
            os.environ.pop("SHIPYARD_HOME", None)
        else:
            os.environ["SHIPYARD_HOME"] = saved
        host.stop()


def test_the_host_says_at_start_that_its_workers_are_isolated(
    probed: tuple[HostProcess, Path],
) -> None:
    host, _ = probed
    status = _status(host)
    # a root host on Linux isolates (CI runs as root); anywhere else it must say it does not
    assert status["isolated"] is (sys.platform.startswith("linux") and os.geteuid() == 0)
    assert status["workers_can_read"] == (
        []
        if status["isolated"]
        else [
            "admin.token",
            "cache.key",
            "meta.db",
        ]
    )
    said = host.log.read_text()
    assert ("workers are isolated" if status["isolated"] else "workers are NOT isolated") in said


def test_a_worker_reads_its_code_its_pinned_model_and_the_cache(
    probed: tuple[HostProcess, Path],
) -> None:
    from shipyard.registry import Registry

    host, source = probed
    facts = host.post("/probe/facts", {}).json()
    assert facts["own_code"] == _sha(source)  # its staged code snapshot
    assert facts["pinned"] == "tiny:1"
    assert facts["weights"] == hashlib.sha256(WEIGHTS).hexdigest()  # its pinned model blob
    os.environ["SHIPYARD_HOME"] = str(host.home)
    try:
        key = Registry().get("tiny:1").key
    finally:
        os.environ.pop("SHIPYARD_HOME")
    blob = host.home / "blobs" / key[:2] / key
    assert host.post("/probe/read", {"paths": [str(blob)]}).json() == {str(blob): _sha(blob)}
    assert facts["rows"] == [1, 2, 3]  # the cache
    lock = host.home / "cache" / "lock.mdb"
    assert host.post("/probe/open_rw", {"paths": [str(lock)]}).json() == {str(lock): "ok"}


def test_a_worker_resolves_models_through_the_host(probed: tuple[HostProcess, Path]) -> None:
    host, _ = probed
    facts = host.post("/probe/facts", {}).json()
    assert facts["unpinned"] == "tiny:1"  # not pinned: asked of the host over the channel
    assert "no model named 'no-such-model'" in facts["missing"]  # the host's own message
    # the worker answered all this without the registry reading meta.db in the worker
    assert facts["registry_module"].endswith("shipyard/registry/__init__.py")
    assert facts["env"]["SHIPYARD_DB_URL"] is None  # it has no use for the database's URL


def test_a_worker_cannot_read_the_host_secrets(probed: tuple[HostProcess, Path]) -> None:
    host, _ = probed
    status = _status(host)
    files = _secret_files(host.home)
    seen = host.post("/probe/read", {"paths": [str(p) for p in files]}).json()
    readable = {p.name.split("-")[0] for p in files if len(seen[str(p)]) == 64}  # a sha256
    assert readable == set(status["workers_can_read"]), seen
    # with the token it read (if any), the admin API: 401 when isolated
    token_path = str(host.home / "admin.token")
    answer = host.post("/probe/admin", {"url": host.url, "token_path": token_path}).json()
    assert answer == (401 if status["isolated"] else 200)
    assert httpx.get(host.url + "/api/v1/deployments", headers=host.admin).status_code == 200


@pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="only a host running as root isolates its workers (CI runs as root)",
)
def test_an_isolated_worker_cannot_reach_the_host_files_another_way(
    probed: tuple[HostProcess, Path],
) -> None:
    host, _ = probed
    assert host.proc is not None
    facts = host.post("/probe/facts", {}).json()
    assert facts["host_pid"] == host.proc.pid
    assert facts["caps"] == dict.fromkeys(["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"], 0)
    assert facts["no_new_privs"] == "1"
    # it writes to a /tmp of its own, also its HOME
    assert facts["env"]["HOME"] == facts["env"]["TMPDIR"] == "/tmp"
    assert facts["scratch"].startswith("/tmp/") and not Path(facts["scratch"]).exists()
    # through the host's own view of the files
    through_proc = f"/proc/{host.proc.pid}/root{host.home}/admin.token"
    assert host.post("/probe/read", {"paths": [through_proc]}).json() == {
        through_proc: "PermissionError"
    }
    # the raw disk under SHIPYARD_HOME, and every block device root may open here (loop
    # devices...): not in the worker's /dev, and it cannot make a node for one
    disk = _disk_of(host.home)
    assert disk.is_block_device()
    disks = [str(disk), *(str(d) for d in _openable_block_devices())]
    assert host.post("/probe/read", {"paths": disks}).json() == dict.fromkeys(
        disks, "FileNotFoundError"
    )
    device = os.stat(disk).st_rdev
    made = host.post("/probe/mknod", {"major": os.major(device), "minor": os.minor(device)})
    assert made.json() == "PermissionError"
    # nothing it could plant for others to run later: code snapshots, the venv, sysctls
    import shipyard

    places = [facts["code_dir"], str(Path(shipyard.__file__).parent), str(host.home / "blobs")]
    assert set(host.post("/probe/create_in", {"directories": places}).json().values()) == {
        "OSError"
    }
    sysctl = "/proc/sys/kernel/core_pattern"
    assert host.post("/probe/open_rw", {"paths": [sysctl]}).json() == {sysctl: "OSError"}


USER = "shipyard-iso"


def _user() -> Generator[pwd.struct_passwd, None, None]:
    """The system user the host runs as: created if missing (no home, no login shell, a
    locked password), deleted afterwards if this test created it."""
    try:
        yield pwd.getpwnam(USER)
        return
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", USER],
        check=True,
    )  # fmt: skip
    try:
        yield pwd.getpwnam(USER)
    finally:
        subprocess.run(["userdel", USER], check=True)


def _myself() -> Generator[pwd.struct_passwd, None, None]:
    yield pwd.getpwuid(os.geteuid())


def _reachable(paths: list[Path], stage: Path) -> list[str]:
    """Shell commands that, run as root in a private mount namespace, let anyone reach
    ``paths`` without changing a mode: each directory on the way that others may not enter
    (/root, 0700) is covered by a 0755 tmpfs holding bind mounts of only the entries on the
    way (/root shows .pyenv and nothing else)."""
    blocked: dict[Path, set[str]] = {}
    for path in paths:
        for directory in reversed(path.parents):
            if not os.stat(directory).st_mode & 0o001:
                blocked.setdefault(directory, set()).add(path.relative_to(directory).parts[0])
                break
    commands = []
    for number, (directory, children) in enumerate(sorted(blocked.items())):
        for child in sorted(children):
            source, staged = directory / child, stage / f"{number}-{child}"
            make = "mkdir" if source.is_dir() else "touch"
            commands += [f"{make} {shlex.quote(str(staged))}"]
            commands += [f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(staged))}"]
        commands += [f"mount -t tmpfs -o mode=0755,size=1m tmpfs {shlex.quote(str(directory))}"]
        for child in sorted(children):
            source, staged = directory / child, stage / f"{number}-{child}"
            commands += [
                f"{'mkdir' if os.path.isdir(staged) or source.is_dir() else 'touch'} "
                f"{shlex.quote(str(source))}",
                f"mount --move {shlex.quote(str(staged))} {shlex.quote(str(source))}",
            ]
    return commands


def test_a_host_that_is_not_root_says_what_its_workers_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host running as a user that is not root says at start that its workers are not
    isolated and which host secrets they can read; a worker then reads exactly those.

    How the user is arranged (the test runs as root on CI; run as anyone else, the host just
    runs as that user): a system user ``shipyard-iso`` (see :func:`_user`) whose
    ``SHIPYARD_HOME`` is a fresh directory under /tmp that it owns (pytest's own temporary
    directories are 0700 root). The interpreter lives under a 0700 /root on these machines:
    nothing is copied and no mode changes. The host starts inside a private mount namespace
    (util-linux ``unshare``, as root) in which every directory on the way to the interpreter,
    the venv and ``sys.path`` that others may not enter is covered by a tmpfs holding only the
    entries on the way (:func:`_reachable`); ``setpriv`` then drops to the user (no
    capabilities, no groups) and runs the host. The namespace ends with the host.
    """
    users = _user() if os.geteuid() == 0 else _myself()
    user = next(users)
    home = Path(tempfile.mkdtemp(prefix="sy-iso-")) / "home"
    home.mkdir()
    os.chown(home.parent, user.pw_uid, user.pw_gid)
    os.chown(home, user.pw_uid, user.pw_gid)
    stage = Path(tempfile.mkdtemp(prefix="sy-stage-"))
    host = HostProcess(home, env={"HOME": str(home)})
    try:
        if os.geteuid() == 0:
            wanted = [Path(sys.executable).resolve(), Path(sys.prefix), Path(sys.base_prefix)]
            wanted += [Path(p) for p in sys.path if p and os.path.isdir(p)]
            script = tmp_path / "as_user.sh"
            script.write_text(
                "set -eu\n"
                + "\n".join(_reachable(wanted, stage))
                + f"\nexec setpriv --reuid={user.pw_uid} --regid={user.pw_gid} --clear-groups"
                + f' -- {shlex.quote(sys.executable)} "$@"\n'
            )
            launcher = tmp_path / "python"
            launcher.write_text(
                f'#!/bin/sh\nexec unshare --mount --propagation private -- /bin/sh {script} "$@"\n'
            )
            launcher.chmod(0o700)
            with monkeypatch.context() as patch:
                patch.setattr(sys, "executable", str(launcher))  # HostProcess runs it
                host.start()
        else:
            host.start()
        assert host.proc is not None
        uid = int(Path(f"/proc/{host.proc.pid}/status").read_text().split("Uid:")[1].split()[1])
        assert uid == user.pw_uid
        status = _status(host)
        assert status == {
            "isolated": False,
            "reason": f"the host runs as uid {user.pw_uid} ({user.pw_name}), not root, so its "
            "workers run as the same user",
            "workers_can_read": ["admin.token", "cache.key", "meta.db"],
        }
        assert "workers are NOT isolated: the host runs as uid" in host.log.read_text()
        files = _secret_files(home)
        os.chown(home / "cache.key", user.pw_uid, user.pw_gid)
        source = tmp_path / "reader_service.py"
        source.write_text(textwrap.dedent(PROBE))
        host.deploy(f"{source}:Reader", "reader")
        seen = host.post("/reader/read", {"paths": [str(p) for p in files]}).json()
        readable = {p.name.split("-")[0] for p in files if len(seen[str(p)]) == 64}
        assert readable == set(status["workers_can_read"]), seen
        token_path = str(home / "admin.token")
        answer = host.post("/reader/admin", {"url": host.url, "token_path": token_path})
        assert answer.json() == 200  # as the host said: with admin.token, the admin API
    finally:
        host.stop()
        shutil.rmtree(home.parent, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)
        users.close()


@pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="the test drops a capability from a root host (CI runs as root)",
)
def test_a_root_host_without_mount_namespaces_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root without CAP_SYS_ADMIN (a container's default) cannot make the workers' view:
    the host says so at start, and its workers can read what it says."""
    launcher = tmp_path / "python"
    launcher.write_text(
        f"#!/bin/sh\nexec setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin -- "
        f'{shlex.quote(sys.executable)} "$@"\n'
    )
    launcher.chmod(0o700)
    host = HostProcess(tmp_path / "home")
    try:
        with monkeypatch.context() as patch:
            patch.setattr(sys, "executable", str(launcher))
            host.start()
        status = _status(host)
        assert status["isolated"] is False
        assert status["reason"].startswith("mount namespaces are unavailable (unshare(")
        assert "workers are NOT isolated: mount namespaces are unavailable" in host.log.read_text()
        files = _secret_files(host.home)
        source = tmp_path / "reader_service.py"
        source.write_text(textwrap.dedent(PROBE))
        host.deploy(f"{source}:Reader", "reader")
        seen = host.post("/reader/read", {"paths": [str(p) for p in files]}).json()
        readable = {p.name.split("-")[0] for p in files if len(seen[str(p)]) == 64}
        assert readable == set(status["workers_can_read"])
        assert readable == {"admin.token", "cache.key", "meta.db"}
    finally:
        host.stop()
