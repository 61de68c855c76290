"""The demos keep separate homes: each wipes only its own (``make -n`` shows the recipe)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _recipe(target: str) -> str:
    # -n prints the commands without running them; venv is up to date or its recipe is printed
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "-o", "venv", "-o", ".venv/.installed", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout


def test_the_demos_wipe_and_use_only_their_own_home() -> None:
    homes = {}
    demos = (
        ("demo", "movie_ranker"),
        ("demo-digits", "digits"),
        ("demo-docs-qa", "docs_qa"),
        ("demo-catalogue", "catalogue_search"),
        ("demo-entities", "screenplay_entities"),
        ("demo-forecast", "forecast_options"),
    )
    for target, script in demos:
        recipe = _recipe(target)
        wiped = re.findall(r"rm -rf (\S+)", recipe)
        used = re.findall(rf"SHIPYARD_HOME=(\S+) \S+ examples/{script}/demo.py", recipe)
        assert len(wiped) == 1 and used == wiped, recipe
        homes[target] = Path(wiped[0])
    assert len(set(homes.values())) == len(demos)
    for a in homes.values():
        assert a.parent == ROOT / ".demo"
        assert not any(a in b.parents for b in homes.values())
