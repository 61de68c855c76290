"""Runs tests/examples/docs_qa_offline_loop.py (not collected on its own: the docs_qa example
end to end, flow -> a real host -> /search and /ask over HTTP) in a pytest of its own inside a
loopback-only network namespace (``unshare -n``, then ``ip link set lo up``): the embedding
model is loaded by the flow and by the service's workers, and a download hidden anywhere
there fails at once instead of hanging. About a minute on the shared 2-core machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(420)
def test_the_docs_qa_loop_passes_inside_a_loopback_only_namespace() -> None:
    inner = (
        "ip link set lo up && exec "
        f"{sys.executable} -m pytest -q -p no:cacheprovider tests/examples/docs_qa_offline_loop.py"
    )
    env = {**os.environ, "SHIPYARD_DOCSQA_NETNS": "1"}
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(name, None)  # the example must set what it needs itself
    out = subprocess.run(
        ["unshare", "-n", "sh", "-c", inner],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert "1 passed" in out.stdout and "failed" not in out.stdout, out.stdout[-3000:]
