"""Reading a run's artifacts whose classes live in its code snapshot, through the client."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from shipyard.client import ClientError, CodeSnapshotError, Run
from shipyard.store import code, errors

FLOW_SOURCE = """
from {helpers} import Helper

class Model:
    def __init__(self, w):
        self.w = w

    class Inner:
        pass

    def predict(self, x):
        return self.w * x + Helper().bias
"""

READER = """
import sys
from shipyard.client import Run
task = Run({pathspec!r})["end"].task
model = task.data.model
inner = task.data.inner
helper = task.data.helper
module = sys.modules[type(model).__module__]
print(type(model).__module__, module.__file__, model.predict(2), type(inner).__qualname__,
      type(helper).__module__, sys.modules[type(helper).__module__].__file__, sep="\\n")
"""


def test_classes_defined_in_the_flow_load_in_another_process_and_directory(
    fake: Any, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    module_name, helpers_name = f"codeflow_{suffix}", f"codehelpers_{suffix}"
    project = tmp_path / "project"
    project.mkdir()
    flow_file = project / f"{module_name}.py"
    flow_file.write_text(FLOW_SOURCE.format(helpers=helpers_name))
    (project / f"{helpers_name}.py").write_text("class Helper:\n    bias = 10\n")

    # write the run as the runtime would: the flow module imported under its own name
    sys.path.insert(0, str(project))
    try:
        flow_module = __import__(module_name)
        helpers = sys.modules[helpers_name]
        artifacts = {
            "model": flow_module.Model(3),
            "inner": flow_module.Model.Inner(),
            "helper": helpers.Helper(),
        }
        code_key = fake.put_bytes(code.pack_code(flow_file, module_name))
        graph = fake.graph("CodeFlow", module_name)
        run_id = fake.run("CodeFlow", graph_json=graph, code_key=code_key)
        fake.task(run_id, "end", artifacts=artifacts)
        fake.finish(run_id)
    finally:
        sys.path.remove(str(project))
        sys.modules.pop(module_name, None)
        sys.modules.pop(helpers_name, None)

    # the project is gone, and the reader's cwd has a decoy module of the same name
    for path in project.iterdir():
        path.unlink()
    project.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{module_name}.py").write_text("raise ImportError('decoy imported')\n")

    def read() -> list[str]:
        result = subprocess.run(
            [sys.executable, "-c", READER.format(pathspec=f"CodeFlow/{run_id}")],
            cwd=elsewhere,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    snapshot = Path(os.environ["SHIPYARD_HOME"]).resolve() / "code" / code_key
    out = read()
    assert out[0] == module_name
    assert Path(out[1]) == snapshot / f"{module_name}.py"
    assert out[2] == "16"
    assert out[3] == "Model.Inner"
    assert out[4] == helpers_name  # found only in the snapshot
    assert Path(out[5]) == snapshot / f"{helpers_name}.py"
    assert read() == out  # a second process reuses the extracted snapshot
    assert sorted(os.listdir(snapshot.parent)) == [code_key]


def test_an_unreadable_snapshot_is_a_client_error_and_a_store_error(
    fake: Any, tmp_path: Path
) -> None:
    module_name = f"badsnapshot_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module_name}.py").write_text("class Model:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        model = __import__(module_name).Model()
        code_key = fake.put_bytes(b"not a zip archive")
        graph = fake.graph("BadFlow", module_name)
        run_id = fake.run("BadFlow", graph_json=graph, code_key=code_key)
        fake.task(run_id, "end", artifacts={"model": model})
        fake.finish(run_id)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module_name, None)

    task = Run(f"BadFlow/{run_id}")["end"].task
    with pytest.raises(CodeSnapshotError, match="not a valid archive") as caught:
        _ = task.data.model
    assert isinstance(caught.value, ClientError)
    assert isinstance(caught.value, errors.CodeSnapshotError)
    assert isinstance(caught.value, errors.StoreError)


def test_the_client_code_module_still_exports_the_snapshot_functions() -> None:
    from shipyard.client import code as old

    assert (old.pack_code, old.extract_code, old.ClassFinder, old.MAX_CODE_BYTES) == (
        code.pack_code,
        code.extract_code,
        code.ClassFinder,
        code.MAX_CODE_BYTES,
    )
