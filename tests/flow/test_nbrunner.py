"""``NBRunner`` in a real notebook: nbclient executes cells on an ipykernel kernel; the flow is
defined in one cell and run from later ones."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from shipyard.client import Flow, namespace
from shipyard.flow.exceptions import FlowDefinitionError
from shipyard.flow.nbrun import NBRunner, flow_file_source

FLOW_CELL = """\
%load_ext autoreload
from shipyard import FlowSpec, NBRunner, Parameter, step

class NoteFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.x = self.alpha * 3
        self.next(self.end)

    @step
    def end(self):
        print("x is", self.x)

print("defined")
"""

RUN_CELL = """\
run = NBRunner(NoteFlow, show_output=False).nbrun(alpha=4)
print("RESULT", run.pathspec, run.successful, run.data.x)
"""

ASYNC_CELL = """\
nb = NBRunner(NoteFlow, show_output=False)
executing = await nb.async_run(alpha=2)
await executing.wait(timeout=60)
print("ASYNC", executing.status, executing.run.data.x)
nb.cleanup()
"""


def _outputs(cell: object) -> str:
    texts = []
    for output in cell["outputs"]:  # type: ignore[index]
        if output.get("output_type") == "stream":
            texts.append(output["text"])
    return "".join(texts)


def test_a_flow_defined_in_a_notebook_cell_runs(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (FLOW_CELL, RUN_CELL, ASYNC_CELL)]
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    assert "defined" in _outputs(nb.cells[0])
    assert "RESULT NoteFlow/1 True 12" in _outputs(nb.cells[1])
    assert "ASYNC successful 6" in _outputs(nb.cells[2])
    namespace(None)
    runs = Flow("NoteFlow").runs()
    assert [r.parameters["alpha"] for r in runs] == [2, 4]
    assert list(tmp_path.glob("*.py")) == []  # the temporary flow files are gone


def test_the_flow_file_is_the_cell_up_to_the_class() -> None:
    cells = ["x = 1", FLOW_CELL.replace("%load_ext autoreload\n", ""), "NoteFlow"]
    source = flow_file_source("NoteFlow", cells)
    assert source.startswith("from shipyard import")
    assert 'print("defined")' not in source
    assert source.rstrip().endswith("NoteFlow()")
    with pytest.raises(FlowDefinitionError, match="no notebook cell defines class Other"):
        flow_file_source("Other", cells)


def test_outside_a_notebook_nbrunner_says_to_use_runner() -> None:
    class Nothing:
        pass

    with pytest.raises(FlowDefinitionError, match="not a notebook"):
        NBRunner(Nothing)
