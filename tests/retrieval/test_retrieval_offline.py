"""Runs tests/retrieval/model — everything that loads the embedding model — in a pytest of
its own inside a loopback-only network namespace (``unshare -n``, then ``ip link set lo
up``): a download hidden anywhere in model loading fails at once instead of hanging, and
``HF_HUB_OFFLINE``/``local_files_only`` are proven, not assumed. The model suite embeds one
small corpus once (about a minute on the shared 2-core machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(420)
def test_the_model_tests_pass_inside_a_loopback_only_namespace() -> None:
    inner = (
        "ip link set lo up && exec "
        f"{sys.executable} -m pytest -q -p no:cacheprovider -p no:randomly tests/retrieval/model"
    )
    env = {**os.environ, "SHIPYARD_RETRIEVAL_NETNS": "1"}
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
    assert " passed" in out.stdout and "failed" not in out.stdout and "skipped" not in out.stdout
