"""``Runner``: start a flow from Python or a notebook and get its Run back.

The run happens in a fresh ``python -m shipyard run`` process, exactly as on the command
line: a notebook's threads and event loop never meet the runtime's fork of the zygote.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.flow.exceptions import FlowDefinitionError

if TYPE_CHECKING:
    from shipyard.client import Run


class Runner:
    """Run a flow class or file with parameters; ``run()`` returns the finished ``Run``.

    >>> run = Runner("flow.py", alpha=0.5).run()     # or Runner(MyFlow, alpha=0.5)
    >>> run.successful, run["end"].task.data.score
    """

    def __init__(
        self,
        flow: type | str | os.PathLike[str],
        *,
        max_workers: int | None = None,
        tags: tuple[str, ...] = (),
        quiet: bool = True,
        env: dict[str, str] | None = None,
        **params: Any,
    ) -> None:
        if isinstance(flow, type):
            source: str | None
            try:
                source = inspect.getsourcefile(flow)
            except TypeError:
                source = None
            if source is None or not Path(source).is_file():
                raise FlowDefinitionError(
                    f"{flow.__name__} is not defined in a file (a notebook cell?)",
                    hint="put the flow in a .py file and pass that file or class",
                )
            self.file: Path = Path(source)
            self.flow_name: str | None = flow.__name__
        else:
            self.file, self.flow_name = Path(flow), None
        self.params = params
        self.max_workers = max_workers
        self.tags = tags
        self.quiet = quiet
        self.env = env

    def _argv(self, pathspec_file: str) -> list[str]:
        argv = [sys.executable, "-m", "shipyard", "run"]
        if self.flow_name:
            argv += ["--flow", self.flow_name]
        argv += [str(self.file), "--run-id-file", pathspec_file]  # it gets Flow/12
        if self.max_workers:
            argv += ["--max-workers", str(self.max_workers)]
        if self.quiet:
            argv.append("--quiet")
        for tag in self.tags:
            argv += ["--tag", tag]
        for name, value in self.params.items():
            if isinstance(value, bool):
                argv.append(f"--{name}" if value else f"--no-{name}")
            elif isinstance(value, list | dict):
                argv += [f"--{name}", json.dumps(value)]
            else:
                argv += [f"--{name}", str(value)]
        return argv

    def run(self, timeout: float | None = None) -> Run:
        """Run to the end (output goes to this process's stdout) and return the Run."""
        from shipyard.client import Run

        with tempfile.TemporaryDirectory() as tmp:
            pathspec_file = os.path.join(tmp, "pathspec")
            env = {**os.environ, **(self.env or {})}
            proc = subprocess.run(
                self._argv(pathspec_file), env=env, timeout=timeout, capture_output=True, text=True
            )
            sys.stdout.write(proc.stdout)
            if not os.path.exists(pathspec_file):
                raise FlowDefinitionError(
                    f"the run did not start (exit {proc.returncode}):\n{proc.stderr.strip()}"
                )
            pathspec = Path(pathspec_file).read_text().strip()
        sys.stderr.write(proc.stderr)
        return Run(pathspec)
