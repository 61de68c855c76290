"""The code snapshot: pack_code, extraction, and loading flow-defined classes elsewhere."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from shipyard.client import CodeSnapshotError, code


def _names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def _project(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "flow.py").write_text("import helpers\n")
    (root / "helpers.py").write_text("X = 1\n")
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("")
    (root / "pkg" / "sub" / "__init__.py").write_text("")
    (root / "data").mkdir()
    (root / "data" / "loose.py").write_text("")  # not a package: skipped
    (root / "notes.txt").write_text("not python")
    for skipped in (".venv", ".hidden", "__pycache__"):
        (root / skipped).mkdir()
        (root / skipped / "__init__.py").write_text("")
        (root / skipped / "x.py").write_text("")
    return root / "flow.py"


def test_pack_code_takes_modules_and_packages_deterministically(tmp_path: Path) -> None:
    flow_file = _project(tmp_path / "proj")
    data = code.pack_code(flow_file, "flow")
    assert sorted(_names(data)) == sorted(
        [
            code.MANIFEST,
            "flow.py",
            "helpers.py",
            "pkg/__init__.py",
            "pkg/mod.py",
            "pkg/sub/__init__.py",
        ]
    )
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read(code.MANIFEST))
    assert manifest == {"format": 1, "module": "flow", "flow_file": "flow.py"}
    os.utime(flow_file, (1, 1))  # mtimes do not change the bytes, so the blob key is stable
    assert code.pack_code(flow_file, "flow") == data


def test_pack_code_of_a_module_inside_a_package_packs_from_the_import_root(
    tmp_path: Path,
) -> None:
    _project(tmp_path / "proj")
    flow_file = tmp_path / "proj" / "pkg" / "sub" / "flow.py"
    flow_file.write_text("")
    names = _names(code.pack_code(flow_file, "pkg.sub.flow"))
    assert "pkg/sub/flow.py" in names and "helpers.py" in names
    manifest = zipfile.ZipFile(io.BytesIO(code.pack_code(flow_file, "pkg.sub.flow")))
    assert json.loads(manifest.read(code.MANIFEST))["flow_file"] == "pkg/sub/flow.py"


def test_pack_code_refuses_too_much_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flow_file = _project(tmp_path / "proj")
    (tmp_path / "proj" / "big.py").write_text("#" * 5000)
    monkeypatch.setattr(code, "MAX_CODE_BYTES", 1000)
    with pytest.raises(CodeSnapshotError, match=r"largest: big\.py .*own"):
        code.pack_code(flow_file, "flow")


def test_pack_code_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CodeSnapshotError, match="is not a file"):
        code.pack_code(tmp_path / "nope.py", "nope")


def test_extract_is_atomic_and_done_once(tmp_path: Path) -> None:
    data = code.pack_code(_project(tmp_path / "proj"), "flow")
    first = code.extract_code(data, "k" * 64, tmp_path / "home")
    assert (first / "pkg" / "mod.py").is_file()
    (first / "marker").write_text("")
    assert code.extract_code(data, "k" * 64, tmp_path / "home") == first
    assert (first / "marker").exists()  # not extracted again
    assert os.listdir(tmp_path / "home" / "code") == ["k" * 64]  # no temp dirs left


def test_extract_refuses_unsafe_paths_and_bad_archives(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape.py", "")
    with pytest.raises(CodeSnapshotError, match="unsafe path"):
        code.extract_code(buffer.getvalue(), "a" * 64, tmp_path)
    with pytest.raises(CodeSnapshotError, match="not a valid archive"):
        code.extract_code(b"garbage", "b" * 64, tmp_path)
    assert not (tmp_path / "escape.py").exists()
    assert os.listdir(tmp_path / "code") == []


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


def test_module_already_imported_is_used_as_is() -> None:
    finder = code.ClassFinder("json", fetch_root=lambda: pytest.fail("must not extract"))
    import json as json_module

    assert finder("json", "JSONDecoder") is json_module.JSONDecoder


def test_missing_class_names_the_file() -> None:
    finder = code.ClassFinder(None, None)
    with pytest.raises(AttributeError, match="'Nope' is not defined in .*json"):
        finder("json", "Nope")
