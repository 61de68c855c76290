"""``Runner``: start a flow from Python or a notebook, as Metaflow's Runner does.

>>> with Runner("flow.py") as runner:                       # doctest: +SKIP
...     result = runner.run(alpha=0.5, tags=["baseline"])
...     result.status, result.run.data.score

Each run happens in a fresh process, exactly as on the command line (``shipyard run``): a
notebook's threads and event loop never meet the runtime's forks. Its output goes to files
that ``.stdout``/``.stderr`` read (and, for the blocking calls with ``show_output``, to this
process's console as it comes). Parameters are checked here first: a misspelled name, a
missing required one or a bad value raises :class:`ParameterError` before anything starts.

- ``run(**params)`` / ``resume(origin_run_id=..., step=...)``: wait for the end, return an
  :class:`ExecutingRun` (``.run`` the client's Run, ``.status``, ``.returncode``...);
- ``await async_run(**params)`` / ``await async_resume(...)``: return as soon as the run
  has an id; ``await result.wait()``, ``async for pos, line in result.stream_log("stdout")``.

Leaving ``with Runner(...)`` (or ``cleanup()``) stops runs still going and removes the output
files (``.stdout``/``.stderr`` keep what they had).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from shipyard.flow.exceptions import FlowDefinitionError, ParameterError

if TYPE_CHECKING:
    from shipyard.client import Run
    from shipyard.flow.parameters import Parameter
    from shipyard.store.context import Stores

Stream = Literal["stdout", "stderr"]

#: options of ``run``/``resume`` (not flow parameters) a call may give
_RUN_OPTIONS = ("tags", "max_workers", "branch", "production", "executor", "ray_address")
_probe_ids = itertools.count()


def _probe(file: Path, flow_name: str | None) -> type:
    """The flow class in ``file``, imported afresh under a throwaway module name (the file
    may have changed since the last run), to check parameters against."""
    from shipyard.flow.spec import FlowSpec

    name = f"_shipyard_runner_probe_{os.getpid()}_{next(_probe_ids)}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise FlowDefinitionError(f"{file} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up
    added = str(file.parent) not in sys.path
    if added:
        sys.path.insert(0, str(file.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
        if added:
            sys.path.remove(str(file.parent))
    flows = {
        obj.__name__: obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, FlowSpec)
        and obj is not FlowSpec
        and obj.__module__ == name
    }
    if flow_name is not None and flow_name in flows:
        return flows[flow_name]
    if flow_name is None and len(flows) == 1:
        return next(iter(flows.values()))
    raise FlowDefinitionError(
        f"{file} defines the flows {sorted(flows)}"
        + (f", not {flow_name!r}" if flow_name else ": pick one with Runner(file, flow=NAME)")
    )


class ExecutingRun:
    """A run started by :class:`Runner`: the process running it and the client's Run.

    Use it as a context manager (``with runner.run() as result:``) to clean up the runner at
    the end, instead of ``with Runner(...)``.
    """

    def __init__(self, runner: Runner, proc: subprocess.Popen[bytes], run: Run, out: Path) -> None:
        self.runner = runner
        self._proc = proc
        self._out = out
        self._timed_out = False
        self._kept: dict[str, str] = {}  # the output, kept when the runner cleans up
        #: the client's Run (status, steps, artifacts read fresh on each access)
        self.run = run

    def __enter__(self) -> ExecutingRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.cleanup()

    @property
    def returncode(self) -> int | None:
        """The run process's exit code: 0 succeeded, None still running."""
        return self._proc.poll()

    @property
    def status(self) -> str:
        """``running``, ``successful``, ``failed``, or ``timeout`` (``wait(timeout=...)``
        stopped it)."""
        if self._timed_out:
            return "timeout"
        code = self._proc.poll()
        if code is None:
            return "running"
        return "successful" if code == 0 else "failed"

    def _keep(self) -> None:
        self._kept = {"stdout": self._read("stdout"), "stderr": self._read("stderr")}

    def _read(self, stream: Stream) -> str:
        if stream in self._kept:
            return self._kept[stream]
        path = self._out / stream
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    @property
    def stdout(self) -> str:
        """Everything the run printed on stdout so far."""
        return self._read("stdout")

    @property
    def stderr(self) -> str:
        """Everything the run printed on stderr so far."""
        return self._read("stderr")

    async def wait(
        self, timeout: float | None = None, stream: Stream | None = None
    ) -> ExecutingRun:
        """Wait for the run to end (``await``); past ``timeout`` seconds it is stopped and
        ``status`` says ``timeout``. ``stream="stdout"`` prints that stream meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        position = 0
        while self._proc.poll() is None:
            if stream is not None:
                position = _echo(self._out / stream, position, stream)
            if deadline is not None and time.monotonic() >= deadline:
                self._timed_out = True
                _stop(self._proc)
                break
            await asyncio.sleep(0.05)
        if stream is not None:
            _echo(self._out / stream, position, stream)
        return self

    async def stream_log(
        self, stream: Stream, position: int | None = None
    ) -> AsyncIterator[tuple[int, str]]:
        """The lines of ``stream`` as they are written, each with the position after it (give
        it back as ``position`` to go on from there); ends when the run has ended."""
        path = self._out / stream
        offset = position or 0
        pending = b""
        while True:
            ended = self._proc.poll() is not None  # read after this: nothing is missed
            data = b""
            if path.exists():
                with path.open("rb") as f:
                    f.seek(offset + len(pending))
                    data = f.read()
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                offset += len(line) + 1
                yield offset, line.decode("utf-8", errors="replace")
            if ended and not data:
                if pending:
                    offset += len(pending)
                    yield offset, pending.decode("utf-8", errors="replace")
                return
            if not data:
                await asyncio.sleep(0.05)

    def __repr__(self) -> str:
        return f"<ExecutingRun {self.run.pathspec} {self.status}>"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Interrupt the run (it records KILLED), then kill it if it does not end in 10 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Runner:
    """Run a flow file (or a flow class defined in a file) as Metaflow's ``Runner`` does.

    ``show_output``: print the run's output as it comes (blocking calls). ``env``: more
    environment variables for the run. ``cwd``: the directory it runs in. Other keywords:
    ``quiet`` (default True: no progress bars), ``tags``, ``max_workers``, ``branch``,
    ``production`` (``@project``), ``executor`` and ``ray_address`` (``--executor ray``),
    given to every run, and parameter values used by every run unless a call gives its own.
    ``flow``: the class to run when the file has several.
    """

    def __init__(
        self,
        flow_file: type | str | os.PathLike[str],
        show_output: bool = True,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        *,
        flow: str | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(flow_file, type):
            try:
                source = inspect.getsourcefile(flow_file)
            except TypeError:
                source = None
            if source is None or not Path(source).is_file():
                raise FlowDefinitionError(
                    f"{flow_file.__name__} is not defined in a file (a notebook cell?)",
                    hint=f"in a notebook use NBRunner({flow_file.__name__}); otherwise put the "
                    "flow in a .py file and pass that file or class",
                )
            self.file = Path(source).resolve()
            self.flow_name: str | None = flow_file.__name__
        else:
            self.file = Path(os.path.abspath(os.fspath(flow_file)))
            if not self.file.is_file():
                raise FlowDefinitionError(f"flow file {os.fspath(flow_file)!r} does not exist")
            self.flow_name = flow
        self.show_output = show_output
        self.env = {**os.environ, **(env or {})}
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.quiet = bool(kwargs.pop("quiet", True))
        kwargs.pop("pylint", None)  # Metaflow lints the flow with pylint; shipyard does not
        self.defaults = kwargs  # run options and parameters, checked at the first call
        self._tmp = Path(tempfile.mkdtemp(prefix="shipyard-runner-"))
        self._procs: list[subprocess.Popen[bytes]] = []
        self._started: list[ExecutingRun] = []
        self._other_stores: Stores | None = None
        self._count = itertools.count()

    # --- context management --------------------------------------------------------------
    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    async def __aenter__(self) -> Runner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Stop the runs still going and remove their output files."""
        for proc in self._procs:
            _stop(proc)
        self._procs.clear()
        for executing in self._started:
            executing._keep()  # .stdout and .stderr still answer after the files go
        self._started.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # --- building the command ------------------------------------------------------------
    def _parameters(self) -> tuple[type, list[Parameter]]:
        from shipyard.flow.parameters import flow_parameters

        flow_cls = _probe(self.file, self.flow_name)
        return flow_cls, flow_parameters(flow_cls)

    def _options(self, given: dict[str, Any], *, resume: bool) -> list[str]:
        """The command-line options for ``given`` (run options and parameters), checked."""
        from shipyard.config import current_user
        from shipyard.flow.launch import parameter_values
        from shipyard.flow.project import resolve

        flow_cls, parameters = self._parameters()
        merged = {**self.defaults, **given}
        by_name = {}
        for p in parameters:
            for key in {p.name, p.name.replace("-", "_"), p.attr}:
                by_name[key] = p
        unknown = sorted(k for k in merged if k not in by_name and k not in _RUN_OPTIONS)
        if unknown:
            names = sorted(p.name for p in parameters)
            raise ParameterError(
                f"{flow_cls.__name__} has no parameter {', '.join(map(repr, unknown))}; its "
                f"parameters: {', '.join(names) or 'none'}; run options: {', '.join(_RUN_OPTIONS)}"
            )
        values = {by_name[k].name: v for k, v in merged.items() if k in by_name}
        if not resume:
            parameter_values(flow_cls, values, parameters)  # ParameterError before it starts
        else:  # a resume reuses the origin's values (the Runner's own are for runs)
            refused = sorted(by_name[k].name for k in given if k in by_name)
            if refused:
                raise ParameterError(
                    f"resume takes no parameter values ({', '.join(refused)}): it reuses "
                    "the origin run's"
                )
            values = {}
        resolve(  # --branch without @project, a bad branch name: said here
            flow_cls,
            branch=merged.get("branch"),
            production=bool(merged.get("production")),
            user=current_user(),
        )
        argv: list[str] = []
        if merged.get("max_workers"):
            argv += ["--max-workers", str(int(merged["max_workers"]))]
        tags = merged.get("tags") or ()
        for tag in [tags] if isinstance(tags, str) else tags:
            argv += ["--tag", str(tag)]
        if merged.get("branch"):
            argv += ["--branch", str(merged["branch"])]
        if merged.get("production"):
            argv.append("--production")
        if merged.get("executor"):
            argv += ["--executor", str(merged["executor"])]
        if merged.get("ray_address"):
            argv += ["--ray-address", str(merged["ray_address"])]
        if self.quiet:
            argv.append("--quiet")
        for p in parameters:
            if p.name not in values:
                continue
            value = values[p.name]
            if isinstance(value, bool):
                argv.append(f"--{p.name}" if value else f"--no-{p.name}")
            elif isinstance(value, list | dict):
                argv += [f"--{p.name}", json.dumps(value)]
            else:
                argv += [f"--{p.name}", str(value)]
        return argv

    def _run_argv(self, params: dict[str, Any], pathspec_file: Path) -> list[str]:
        argv = [sys.executable, "-m", "shipyard", "run"]
        if self.flow_name:
            argv += ["--flow", self.flow_name]
        argv += [str(self.file), "--run-id-file", str(pathspec_file)]
        return argv + self._options(params, resume=False)

    def _resume_argv(self, kwargs: dict[str, Any], pathspec_file: Path) -> list[str]:
        origin = kwargs.pop("origin_run_id", None)
        step = kwargs.pop("step", kwargs.pop("step_to_rerun", None))
        argv = [sys.executable, "-c", _RESUME_MAIN, str(self.file), self.flow_name or ""]
        argv += ["resume"] + ([str(origin)] if origin is not None else [])
        if step:
            argv += ["--step", str(step)]
        argv += ["--run-id-file", str(pathspec_file)]
        return argv + self._options(kwargs, resume=True)

    # --- starting ------------------------------------------------------------------------
    def _start(self, argv: list[str], out: Path) -> subprocess.Popen[bytes]:
        out.mkdir()
        with (out / "stdout").open("wb") as stdout, (out / "stderr").open("wb") as stderr:
            proc = subprocess.Popen(
                argv, env=self.env, cwd=self.cwd, stdout=stdout, stderr=stderr, stdin=None
            )
        self._procs.append(proc)
        return proc

    def _stores(self) -> Stores:
        """Where the runs are recorded: this process's stores, unless ``env`` points the
        runs at another home or database (then those, asked of the settings there)."""
        from shipyard.store.context import Stores, default_stores

        keys = ("SHIPYARD_HOME", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL")
        if all(self.env.get(k) == os.environ.get(k) for k in keys):
            return default_stores()
        if self._other_stores is None:
            from shipyard.store.blobs import open_blob_store
            from shipyard.store.meta import MetaStore

            code = "from shipyard.config import settings as s; c = s(); "
            code += "print(c.home); print(c.db_url); print(c.store_url)"
            told = subprocess.run(
                [sys.executable, "-c", code],
                env=self.env,
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )
            home, db_url, store_url = told.stdout.splitlines()[-3:]
            self._other_stores = Stores(
                meta=MetaStore.open(db_url),
                blobs=open_blob_store(store_url),
                home=Path(home),
                db_url=db_url,
                store_url=store_url,
                pid=os.getpid(),
            )
        return self._other_stores

    def _executing(self, proc: subprocess.Popen[bytes], out: Path) -> ExecutingRun:
        from shipyard.client import Run

        text = (out / "pathspec").read_text().strip()
        flow_name, _, run_id = text.partition("/")
        run = Run._from_ids(self._stores(), flow_name, int(run_id))
        executing = ExecutingRun(self, proc, run, out)
        self._started.append(executing)
        return executing

    def _not_started(self, proc: subprocess.Popen[bytes], out: Path) -> FlowDefinitionError:
        stderr = (out / "stderr").read_text(encoding="utf-8", errors="replace").strip()
        return FlowDefinitionError(f"the run did not start (exit {proc.returncode}):\n{stderr}")

    def _blocking(self, argv_for: Any, kwargs: dict[str, Any]) -> ExecutingRun:
        out = self._tmp / str(next(self._count))
        argv = argv_for(kwargs, out / "pathspec")
        proc = self._start(argv, out)
        positions = {"stdout": 0, "stderr": 0}
        while True:
            ended = proc.poll() is not None
            if self.show_output:
                for stream in ("stdout", "stderr"):
                    positions[stream] = _echo(out / stream, positions[stream], stream)
            if ended:
                break
            time.sleep(0.05)
        if not (out / "pathspec").exists():
            raise self._not_started(proc, out)
        return self._executing(proc, out)

    async def _async(self, argv_for: Any, kwargs: dict[str, Any]) -> ExecutingRun:
        out = self._tmp / str(next(self._count))
        argv = argv_for(kwargs, out / "pathspec")
        proc = self._start(argv, out)
        while not (out / "pathspec").exists() or not (out / "pathspec").read_text():
            if proc.poll() is not None:
                if (out / "pathspec").exists():
                    break
                raise self._not_started(proc, out)
            await asyncio.sleep(0.02)
        return self._executing(proc, out)

    def run(self, **kwargs: Any) -> ExecutingRun:
        """Run the flow to the end with these parameter values (and ``tags``,
        ``max_workers``, ``branch``, ``production``); ``.status`` says how it ended."""
        return self._blocking(self._run_argv, kwargs)

    def resume(self, **kwargs: Any) -> ExecutingRun:
        """Resume ``origin_run_id`` (default: the flow's latest failed run) from the file as
        it is now, re-running from ``step`` on if given; wait for the end."""
        return self._blocking(self._resume_argv, kwargs)

    async def async_run(self, **kwargs: Any) -> ExecutingRun:
        """Start the run and return once it has an id (``await``); then ``await
        result.wait()`` or ``async for position, line in result.stream_log("stdout")``."""
        return await self._async(self._run_argv, kwargs)

    async def async_resume(self, **kwargs: Any) -> ExecutingRun:
        """:meth:`resume`, returning once the new run has an id (``await``)."""
        return await self._async(self._resume_argv, kwargs)


def _echo(path: Path, position: int, stream: str) -> int:
    if not path.exists():
        return position
    with path.open("rb") as f:
        f.seek(position)
        data = f.read()
    if data:
        target = sys.stdout if stream == "stdout" else sys.stderr
        target.write(data.decode("utf-8", errors="replace"))
        target.flush()
    return position + len(data)


#: ``python -c`` for a resume from the flow file as it is now (``python flow.py resume``,
#: without needing the file's ``if __name__ == "__main__"`` lines)
_RESUME_MAIN = (
    "import sys\n"
    "from shipyard.cli.flows import flow_group\n"
    "from shipyard.flow.loader import load_flow\n"
    "loaded = load_flow(sys.argv[1], sys.argv[2] or None)\n"
    "flow_group(loaded).main(sys.argv[3:], prog_name=sys.argv[1])\n"
)


__all__ = ["ExecutingRun", "Runner"]
