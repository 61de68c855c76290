"""Runs tests/examples/docs_qa_eval_offline.py — the evaluation flow end to end, which loads
the embedding model — in a pytest of its own inside a loopback-only network namespace
(``unshare -n``, then ``ip link set lo up``): a download hidden in model loading fails at once
instead of hanging. About half a minute on the shared 2-core machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(420)
def test_the_evaluation_flow_passes_inside_a_loopback_only_namespace() -> None:
    inner = (
        "ip link set lo up && exec "
        f"{sys.executable} -m pytest -q -p no:cacheprovider -p no:randomly "
        "tests/examples/docs_qa_eval_offline.py"
    )
    env = dict(os.environ)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        env.pop(name, None)  # the code under test must set what it needs itself
    out = subprocess.run(
        ["unshare", "-n", "sh", "-c", inner],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "1 passed" in out.stdout and "skipped" not in out.stdout
