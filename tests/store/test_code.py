"""The code snapshot: pack_code, extraction, and finding classes (see also
tests/client/test_code_snapshot.py, which reads a run's artifacts through one)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from shipyard.store import code
from shipyard.store.errors import CodeSnapshotError


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


def test_module_already_imported_is_used_as_is() -> None:
    finder = code.ClassFinder("json", fetch_root=lambda: pytest.fail("must not extract"))
    import json as json_module

    assert finder("json", "JSONDecoder") is json_module.JSONDecoder


def test_missing_class_names_the_file() -> None:
    finder = code.ClassFinder(None, None)
    with pytest.raises(AttributeError, match="'Nope' is not defined in .*json"):
        finder("json", "Nope")
