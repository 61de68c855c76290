"""Runs tests/examples/catalogue_offline_loop.py (not collected on its own) in a pytest of its
own inside a loopback-only network namespace (``unshare -n``, then ``ip link set lo up``): the
embedding model is loaded by the test, the flow and the service's worker, and a download
hidden anywhere there fails at once instead of hanging. About a minute and a half on the
shared 2-core machine (800 + 300 titles embedded)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_the_catalogue_loop_passes_inside_a_loopback_only_namespace() -> None:
    inner = (
        "ip link set lo up && exec "
        f"{sys.executable} -m pytest -q -p no:cacheprovider "
        "tests/examples/catalogue_offline_loop.py"
    )
    env = {**os.environ, "SHIPYARD_CATALOGUE_NETNS": "1"}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)  # the example must set what it needs itself
    out = subprocess.run(
        ["unshare", "-n", "sh", "-c", inner],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "2 passed" in out.stdout and "failed" not in out.stdout, out.stdout[-3000:]
