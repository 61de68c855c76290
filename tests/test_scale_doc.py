"""docs/scale.md is exactly what bench/scale.py prints from BENCHMARKS.md's measured rows, so
the doc cannot drift from the measurements; and the script refuses a BENCHMARKS.md that lacks
a row it needs, naming the row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _scale(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(cwd / "bench" / "scale.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docs_scale_md_is_the_scripts_output() -> None:
    out = _scale(ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (ROOT / "docs" / "scale.md").read_text(), (
        "docs/scale.md differs from `python bench/scale.py`: run "
        "`python bench/scale.py > docs/scale.md` and commit it"
    )


def test_a_missing_row_is_named(tmp_path: Path) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "scale.py").write_text((ROOT / "bench" / "scale.py").read_text())
    text = (ROOT / "BENCHMARKS.md").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("| rank rate per core |")]
    (tmp_path / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")
    out = _scale(tmp_path)
    assert out.returncode == 1
    assert "rank rate per core" in out.stderr
    assert out.stdout == ""
