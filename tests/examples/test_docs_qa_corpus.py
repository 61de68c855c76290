"""scripts/services.sh's python_docs_check: the docs_qa corpus (Debian's python3.11-doc) is
found and exported; when it is missing it is installed with apt-get (update first), and if
that fails the run warns, or fails under CI=true."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "services.sh"


def check(tmp_path: Path, docs: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """python_docs_check with ``docs`` as the corpus and an apt-get that records its calls
    and whose installs fail (no package is installed by a test)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "apt-get"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/apt.log\n[ "$1" = update ]\n')
    fake.chmod(0o755)
    return subprocess.run(
        [
            "bash",
            "-c",
            f'source {SCRIPT}\npython_docs_check; echo "rc=$? $SHIPYARD_TEST_PYTHON_DOCS"',
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON_DOCS": str(docs), **env},
    )


def test_an_installed_corpus_is_exported_without_apt(tmp_path: Path) -> None:
    (tmp_path / "docs" / "library").mkdir(parents=True)
    (tmp_path / "docs" / "library" / "os.rst.txt").write_text("os\n==\n")
    done = check(tmp_path, tmp_path / "docs", CI="true")
    assert done.stdout == f"rc=0 {tmp_path / 'docs'}\n"
    assert not (tmp_path / "apt.log").exists()


def test_a_missing_corpus_is_installed_and_fails_the_run_under_ci(tmp_path: Path) -> None:
    done = check(tmp_path, tmp_path / "none", CI="true")
    assert done.stdout == "rc=1 \n"
    assert "installing python3.11-doc (apt-get)" in done.stderr
    assert "python3.11-doc is not installed and could not be installed" in done.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls[0] == "update -qq" and calls[1].startswith("install -y -qq python3.11-doc")
    local = check(tmp_path, tmp_path / "none")  # not CI: a warning, the run goes on
    assert local.stdout == "rc=0 \n" and "WARNING" in local.stderr


def test_the_demo_checks_the_corpus_and_wipes_only_its_own_home() -> None:
    root = SCRIPT.parents[1]
    recipe = subprocess.run(
        [
            "make",
            "-n",
            "--no-print-directory",
            "-o",
            "venv",
            "-o",
            ".venv/.installed",
            "demo-docs-qa",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    home = root / ".demo" / "docs-qa"
    assert recipe == [
        "source scripts/services.sh && python_docs_check",
        f"rm -rf {home}",
        f"SHIPYARD_HOME={home} .venv/bin/python examples/docs_qa/demo.py",
    ]
