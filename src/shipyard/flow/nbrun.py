"""``NBRunner``: run a flow defined in a notebook cell, as Metaflow's NBRunner does.

>>> run = NBRunner(HelloFlow).nbrun(alpha=2)     # doctest: +SKIP
>>> run.data.result                              # doctest: +SKIP

A run happens in a fresh process, which needs the flow in a file: NBRunner finds the latest
cell that defines the class (in IPython's input history), writes that cell up to the end of
the class to a temporary file in ``base_dir`` (the current directory by default) and runs it
with :class:`~shipyard.flow.runner.Runner`. So the cell must hold the imports the flow needs,
as in Metaflow; its IPython magics are left out.
"""

from __future__ import annotations

import ast
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.flow.exceptions import FlowDefinitionError
from shipyard.flow.runner import ExecutingRun, Runner

if TYPE_CHECKING:
    from shipyard.client import Run


def _cells() -> list[str]:
    """The notebook's cells as Python (magics translated), newest last."""
    try:
        from IPython import get_ipython  # type: ignore[attr-defined]
    except ImportError:
        get_ipython = None
    shell = get_ipython() if get_ipython is not None else None
    if shell is None:
        raise FlowDefinitionError(
            "NBRunner runs a flow defined in a notebook cell, and this is not a notebook",
            hint="outside a notebook use Runner('flow.py')",
        )
    return [str(cell) for cell in shell.history_manager.input_hist_parsed]


def flow_file_source(flow_name: str, cells: list[str]) -> str:
    """A flow file made of the latest cell defining class ``flow_name``, cut after the class,
    ending in the usual ``if __name__ == "__main__":`` lines."""
    for cell in reversed(cells):
        try:
            tree = ast.parse(cell)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == flow_name:
                last = node.end_lineno or node.lineno
                lines = cell.splitlines()[:last]
                for other in tree.body:  # magics (%load_ext...) mean nothing outside IPython
                    if other.lineno <= last and any(
                        isinstance(n, ast.Name) and n.id == "get_ipython" for n in ast.walk(other)
                    ):
                        end = other.end_lineno or other.lineno
                        lines[other.lineno - 1 : end] = [""] * (end - other.lineno + 1)
                lines += ["", 'if __name__ == "__main__":', f"    {flow_name}()", ""]
                return "\n".join(lines)
    raise FlowDefinitionError(
        f"no notebook cell defines class {flow_name}",
        hint="define the flow class in a cell (with its imports) and run that cell first",
    )


class NBRunner:
    """:class:`Runner` for a ``FlowSpec`` class defined in a notebook cell.

    ``nbrun(**params)`` runs it to the end and returns the client's Run (and cleans up);
    ``run``, ``resume``, ``async_run``, ``async_resume`` are Runner's (then call
    ``cleanup()``). ``base_dir``: where the temporary flow file goes and the run runs.
    """

    def __init__(
        self,
        flow: type,
        show_output: bool = True,
        env: dict[str, str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(flow, type):
            raise FlowDefinitionError(f"NBRunner takes the flow class, not {flow!r}")
        self.flow = flow
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        source = flow_file_source(flow.__name__, _cells())
        fd, name = tempfile.mkstemp(prefix=f"{flow.__name__}_", suffix=".py", dir=self.base_dir)
        with os.fdopen(fd, "w") as f:
            f.write(source)
        self.flow_file = Path(name)
        # the kernel's own variables must not steer the run's process
        run_env = {"JPY_PARENT_PID": "", **(env or {})}
        try:
            self.runner = Runner(
                self.flow_file,
                show_output=show_output,
                env=run_env,
                cwd=self.base_dir,
                flow=flow.__name__,
                **kwargs,
            )
        except BaseException:
            self.flow_file.unlink(missing_ok=True)
            raise

    def nbrun(self, **kwargs: Any) -> Run:
        """Run to the end with these parameters; return the client's Run."""
        try:
            return self.runner.run(**kwargs).run
        finally:
            self.cleanup()

    def nbresume(self, **kwargs: Any) -> Run:
        """Resume (``origin_run_id``, ``step``) to the end; return the client's Run."""
        try:
            return self.runner.resume(**kwargs).run
        finally:
            self.cleanup()

    def run(self, **kwargs: Any) -> ExecutingRun:
        return self.runner.run(**kwargs)

    def resume(self, **kwargs: Any) -> ExecutingRun:
        return self.runner.resume(**kwargs)

    async def async_run(self, **kwargs: Any) -> ExecutingRun:
        return await self.runner.async_run(**kwargs)

    async def async_resume(self, **kwargs: Any) -> ExecutingRun:
        return await self.runner.async_resume(**kwargs)

    def cleanup(self) -> None:
        """Stop runs still going; remove the temporary flow file and the output files."""
        self.runner.cleanup()
        self.flow_file.unlink(missing_ok=True)


__all__ = ["NBRunner", "flow_file_source"]
