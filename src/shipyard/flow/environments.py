"""Per-step Python environments: ``@pypi`` and ``@pypi_base``.

Before a run starts, each distinct requirement set (the step's ``@pypi`` merged over the
flow's ``@pypi_base``) becomes a virtual environment under
``$SHIPYARD_HOME/envs/<sha256>``, the hash of the normalized requirements, the Python
version and the platform. It is built once and then reused by every run and every flow
that asks for the same set:

- a lock file (``<sha256>.lock``, ``flock``) makes concurrent runs build it once: the
  second waits, then finds it built;
- it is built in a temporary directory beside it and renamed into place when complete
  (with ``shipyard-env.json`` inside, written last), so a half-built environment is never
  used; an interrupted build leaves only a temporary directory the next build removes;
- pip runs with ``--no-index --find-links`` when ``--pypi-find-links`` (or
  ``SHIPYARD_PYPI_FIND_LINKS``, ``os.pathsep``-separated) names a wheelhouse, else with
  pip's own configuration (``PIP_INDEX_URL``, ``pip.conf``...); a failure stops the run
  before any step runs, with pip's last lines and the requirement set.

The environment holds only the step's packages. Its tasks are not forked from the zygote
(which runs the interpreter shipyard runs in) but started with the environment's own
``python``, which imports shipyard from where this process found it: the task's
``sys.path`` is the environment's own packages first, then shipyard's source and (same
Python version only) the packages of the environment shipyard runs in, so a version the
step pins wins and shipyard's own imports still work. Nothing is installed into the
environment for that, so it stays a pure function of its requirements (and a cached one
keeps working when shipyard moves or is upgraded).
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import pickle
import re
import site
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.flow.decorators import check_pypi_attributes, parse_decospec
from shipyard.flow.exceptions import FlowError, GraphError

if TYPE_CHECKING:
    from shipyard.flow.graph import Graph, Node
    from shipyard.flow.task import TaskSpec

#: written last into a built environment: what it holds and when it was built
MARKER = "shipyard-env.json"
#: the ``os.pathsep``-separated wheelhouses (directories or URLs) pip is limited to
FIND_LINKS_VAR = "SHIPYARD_PYPI_FIND_LINKS"


class EnvironmentBuildError(FlowError):
    """A @pypi environment could not be built (pip failed, no such Python)."""


@dataclass(frozen=True)
class PythonEnv:
    """One requirement set: what a @pypi step runs with."""

    packages: tuple[tuple[str, str], ...]  # (normalized name, pip specifier), sorted
    python: str  # the interpreter the environment is made from
    python_version: str  # "3.11"

    @property
    def requirements(self) -> list[str]:
        return [f"{name}{spec}" for name, spec in self.packages]

    @property
    def key(self) -> str:
        """The environment's directory name: sha256 of what it holds and where it runs."""
        import hashlib
        import sysconfig

        identity = {
            "requirements": self.requirements,
            "python": f"{sys.implementation.name}-{self.python_version}",
            "platform": sysconfig.get_platform(),
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        return f"{', '.join(self.requirements) or 'no packages'} (python {self.python_version})"


def _normalize(name: str) -> str:
    """PEP 503: ``Foo_Bar.baz`` and ``foo-bar-baz`` are one package."""
    base, bracket, extras = name.partition("[")
    return re.sub(r"[-_.]+", "-", base).lower() + (bracket + extras.lower() if bracket else "")


def _specifier(version: str) -> str:
    version = version.strip()
    if not version:
        return ""
    return f"=={version}" if version[0].isdigit() else version


def _running_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def find_python(version: str | None, where: str) -> tuple[str, str]:
    """(interpreter, "3.X") for ``python=version``: the running one when it matches (or
    when None), else ``python3.X`` on PATH, which must report that version."""
    import shutil
    import subprocess

    running = _running_version()
    full = ".".join(map(str, sys.version_info[:3]))
    if version is None or version in (running, full):
        return sys.executable, running
    minor = ".".join(version.split(".")[:2])
    found = shutil.which(f"python{minor}")
    if found is not None:
        try:
            reported = subprocess.run(
                [found, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            reported = ""
        if reported == version or reported.rpartition(".")[0] == version:
            return found, minor
    raise EnvironmentBuildError(
        f"{where}: python={version!r}, but this run's Python is {full} and there is no "
        f"working python{minor} on PATH",
        hint=f"install Python {version} (so that python{minor} is on PATH), "
        f"or leave python= out to use {running}",
    )


def _merged(node: Node, base: Any) -> dict[str, Any] | None:
    """The @pypi settings of ``node`` over the flow's @pypi_base; None without either."""
    own = next((d for d in node.decorators if d.name == "pypi"), None)
    if own is None and base is None:
        return None
    packages: dict[str, str] = {}
    python = None
    disabled = False
    for deco in (base, own):
        if deco is not None:
            # by normalized name: the step's "tiny-pkg" replaces the base's "Tiny_Pkg"
            packages.update({_normalize(n): v for n, v in deco.attributes["packages"].items()})
            python = deco.attributes["python"] or python
            disabled = bool(deco.attributes["disabled"])
    if disabled:
        return None
    return {"packages": packages, "python": python}


def step_environments(graph: Graph) -> dict[str, PythonEnv]:
    """The environment of each step that has one (``@pypi`` or the flow's ``@pypi_base``).
    Raises GraphError or EnvironmentBuildError before anything runs."""
    base = next((d for d in graph.flow_decorators if d.name == "pypi_base"), None)
    if base is not None:
        check_pypi_attributes(
            base,
            lambda message: GraphError(
                f"flow {graph.flow_name}: {message}", source_file=graph.source_file
            ),
        )
    envs: dict[str, PythonEnv] = {}
    pythons: dict[str | None, tuple[str, str]] = {}
    for node in graph:
        settings = _merged(node, base)
        if settings is None:
            continue
        version = settings["python"]
        if version not in pythons:
            pythons[version] = find_python(version, f"step {node.name!r}: @pypi")
        python, python_version = pythons[version]
        packages = tuple(
            sorted((_normalize(name), _specifier(v)) for name, v in settings["packages"].items())
        )
        envs[node.name] = PythonEnv(packages, python, python_version)
    return envs


def find_links(given: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The wheelhouses pip is limited to: ``--pypi-find-links``, else the environment
    variable; empty means pip's own configuration (its index)."""
    if given:
        return list(given)
    return [p for p in os.environ.get(FIND_LINKS_VAR, "").split(os.pathsep) if p]


def envs_root(home: Path) -> Path:
    return home / "envs"


def ensure_environment(
    env: PythonEnv,
    home: Path,
    links: list[str],
    say: Callable[[str], None],
    steps: list[str],
) -> Path:
    """The environment's ``python``, building it first if no run has (once, under a lock,
    renamed into place when complete)."""
    root = envs_root(home)
    final = root / env.key
    python = final / "bin" / "python"
    if (final / MARKER).is_file() and python.exists():
        return python
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{env.key}.lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"pypi: waiting for another run building the environment {env.key[:12]}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / MARKER).is_file() and python.exists():
            return python  # another run built it meanwhile
        _build(env, final, links, say, steps)
    return python


def _build(
    env: PythonEnv, final: Path, links: list[str], say: Callable[[str], None], steps: list[str]
) -> None:
    import shutil
    import sysconfig

    for stale in final.parent.glob(f".{env.key}.*.building"):
        shutil.rmtree(stale, ignore_errors=True)  # an interrupted build (we hold the lock)
    if final.exists():  # no marker: not one of ours, or from before markers; rebuild
        shutil.rmtree(final)
    tmp = final.parent / f".{env.key}.{os.getpid()}.building"
    where = (
        f"{', '.join(links)} (pip --no-index --find-links)" if links else "pip's configured index"
    )
    say(
        f"pypi: building the environment for {', '.join(steps)}: {env.describe()} "
        f"from {where} (once; {final})"
    )
    started = time.monotonic()
    try:
        venv = [env.python, "-m", "venv", "--without-pip", str(tmp)]
        _run(venv, env, say, "python -m venv", steps)
        if env.packages:
            command = [
                *_pip(tmp),
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
                "--no-warn-script-location",
            ]
            for link in links:
                command += ["--find-links", link]
            if links:
                command.append("--no-index")
            _run([*command, *env.requirements], env, say, "pip install", steps)
        _fix_scripts(tmp, final)
        marker = {
            "requirements": env.requirements,
            "python": env.python_version,
            "platform": sysconfig.get_platform(),
            "built_at": time.time(),
            "built_by_pid": os.getpid(),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"pypi: environment {env.key[:12]} ready in {time.monotonic() - started:.1f} s")


def _pip(tmp: Path) -> list[str]:
    """pip, run by this interpreter for the new environment's (``pip --python``), so that
    the environment needs no pip of its own; the environment's own pip where this
    interpreter has none."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "--python", str(tmp / "bin" / "python")]
    subprocess.run(
        [str(tmp / "bin" / "python"), "-m", "ensurepip", "--default-pip"],
        check=True,
        capture_output=True,
    )
    return [str(tmp / "bin" / "python"), "-m", "pip"]


def _run(
    command: list[str], env: PythonEnv, say: Callable[[str], None], what: str, steps: list[str]
) -> None:
    """Run a build command, showing its output as it comes; on failure raise with its last
    lines and the requirement set."""
    import subprocess

    tail: list[str] = []
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail = [*tail[-19:], line]
                say(f"  pypi | {line}")
    if proc.returncode != 0:
        last = "\n".join(f"    {line}" for line in tail[-12:])
        raise EnvironmentBuildError(
            f"@pypi could not build the environment of step(s) {', '.join(steps)}: "
            f"{env.describe()}; {what} exited with {proc.returncode}, its last lines:\n{last}",
            hint="fix the package names or versions in @pypi/@pypi_base, or point "
            "--pypi-find-links at a wheelhouse that has them",
        )


def _fix_scripts(tmp: Path, final: Path) -> None:
    """Console scripts pip wrote name the temporary directory in their ``#!`` line: point
    them at the final one (the environment is renamed there)."""
    old, new = str(tmp).encode(), str(final).encode()
    for path in (tmp / "bin").iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        with open(path, "rb") as f:
            head = f.read(2)
        if head != b"#!":
            continue
        data = path.read_bytes()
        first, _, rest = data.partition(b"\n")
        if old in first:
            path.write_bytes(first.replace(old, new) + b"\n" + rest)


def prepare_environments(
    graph: Graph, home: Path, links: list[str], say: Callable[[str], None]
) -> dict[str, tuple[str, str]]:
    """Build (or find) every @pypi environment the flow needs: step name -> (its python,
    its Python version)."""
    envs = step_environments(graph)
    by_key: dict[str, tuple[PythonEnv, list[str]]] = {}
    for step_name, env in envs.items():
        by_key.setdefault(env.key, (env, []))[1].append(step_name)
    pythons: dict[str, tuple[str, str]] = {}
    for env, steps in by_key.values():
        python = ensure_environment(env, home, links, say, steps)
        for step_name in steps:
            pythons[step_name] = (str(python), env.python_version)
    return pythons


# -- starting a task in its environment -------------------------------------------------
def shipyard_paths(python_version: str) -> list[str]:
    """What a task of an environment of ``python_version`` adds after the environment's
    own packages: the directory shipyard is imported from and, for the running Python
    version, the packages of the environment this process runs in."""
    import shipyard

    paths = [str(Path(shipyard.__file__).resolve().parent.parent)]
    if python_version == _running_version():
        user = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
        paths += [p for p in [*site.getsitepackages(), *user] if os.path.isdir(p)]
    return paths


#: what the environment's python runs: put shipyard on the path, then run the task
_BOOT = (
    "import json, site, sys\n"
    "for p in json.loads(sys.argv[3]):\n"
    "    site.addsitedir(p)\n"
    "from shipyard.flow.environments import task_main\n"
    "task_main(int(sys.argv[1]), int(sys.argv[2]))\n"
)


def launch_task(flow_cls: type, graph: Graph, spec: TaskSpec, report_fd: int) -> int:
    """The zygote's target: run the task here (forked), or, for a @pypi step, replace this
    process with the step's environment's python running it. The process, its group and
    its pid stay the same, so timeouts, kills and the report pipe work as for any task."""
    from shipyard.flow.task import run_task

    pypi = spec.extra.get("pypi")
    if pypi is None:
        return run_task(flow_cls, graph, spec, report_fd)  # type: ignore[arg-type]
    import tempfile

    payload = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the new program by fd
    payload.write(pickle.dumps((spec, pypi), protocol=5))
    payload.flush()
    payload.seek(0)
    # the task's output files from the start: an import failure is in the task's log
    for fd, suffix in ((1, "out"), (2, "err")):
        target = os.open(spec.path(suffix), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, fd)
        os.close(target)
    os.set_inheritable(payload.fileno(), True)
    os.set_inheritable(report_fd, True)
    python = pypi["python"]
    argv = [python, "-c", _BOOT, str(payload.fileno()), str(report_fd), json.dumps(pypi["paths"])]
    os.execv(python, argv)
    return 1  # not reached


def task_main(payload_fd: int, report_fd: int) -> None:
    """In the environment's python: load the flow as the runtime did, run the task, exit."""
    import traceback

    from shipyard.flow.decorators import attach_decospecs
    from shipyard.flow.loader import load_flow
    from shipyard.flow.task import error_dict, run_task, upload_logs, write_result
    from shipyard.store.blobs import open_blob_store

    with os.fdopen(payload_fd, "rb") as f:
        spec, pypi = pickle.load(f)
    try:
        for module in pypi["decorator_modules"]:  # plugins --with names (@card)
            importlib.import_module(module)
        loaded = load_flow(pypi["flow_file"], pypi["flow_name"])
        graph = loaded.graph()
        attach_decospecs(graph, pypi["decospecs"])
    except BaseException as exc:  # noqa: BLE001 - reported as the task's failure
        traceback.print_exc()
        sys.stderr.flush()
        result: Any = {"ok": False, "error": error_dict(exc), "duration": 0.0}
        try:
            result.update(upload_logs(open_blob_store(spec.store_url), spec))
        except Exception:  # noqa: BLE001, S110 - the runtime uploads what is left
            pass
        write_result(report_fd, result)
        os._exit(1)
    code = run_task(loaded.flow_cls, graph, spec, report_fd)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def pypi_extra(
    flow_file: Path, flow_name: str, decospecs: list[str], python: tuple[str, str]
) -> dict[str, Any]:
    """What a @pypi step's TaskSpec carries (``spec.extra["pypi"]``) for :func:`launch_task`:
    ``python`` is (the environment's python, its Python version)."""
    return {
        "python": python[0],
        "paths": shipyard_paths(python[1]),
        "flow_file": str(flow_file),
        "flow_name": flow_name,
        "decospecs": list(decospecs),
        "decorator_modules": sorted({parse_decospec(d)[0].__module__ for d in decospecs}),
    }


__all__ = [
    "MARKER",
    "EnvironmentBuildError",
    "PythonEnv",
    "ensure_environment",
    "find_links",
    "launch_task",
    "prepare_environments",
    "step_environments",
]
