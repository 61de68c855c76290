"""The two demos keep separate homes: each wipes only its own (``make -n`` shows the recipe)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _recipe(target: str) -> str:
    # -n prints the commands without running them; venv is up to date or its recipe is printed
    out = subprocess.run(
        ["make", "-n", "-o", "venv", "-o", ".venv/.installed", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout


def test_the_demos_wipe_and_use_only_their_own_home() -> None:
    homes = {}
    for target, script in (("demo", "movie_ranker"), ("demo-digits", "digits")):
        recipe = _recipe(target)
        wiped = re.findall(r"rm -rf (\S+)", recipe)
        used = re.findall(rf"SHIPYARD_HOME=(\S+) \S+ examples/{script}/demo.py", recipe)
        assert len(wiped) == 1 and used == wiped, recipe
        homes[target] = Path(wiped[0])
    assert homes["demo"] != homes["demo-digits"]
    assert homes["demo"] not in homes["demo-digits"].parents
    assert homes["demo-digits"] not in homes["demo"].parents
    assert {h.parent for h in homes.values()} == {ROOT / ".demo"}
