"""Runs tests/ray, which start Ray, in a pytest of their own inside a loopback-only network
namespace (``unshare -n``, then ``ip link set lo up``): Ray's processes and connections
can reach nothing but 127.0.0.1 there (its cloud-metadata probe fails at once), while the
other tests keep reaching the servers scripts/services.sh started outside it. One Ray
cluster serves all of tests/ray (a session fixture, support/ray_cluster.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _left_behind(token: str) -> list[psutil.Process]:
    """Processes that carry this run's token in their environment (every process the inner
    pytest started inherits it, Ray's included) and are still alive."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("SHIPYARD_RAY_SUITE") == token:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


# the whole of tests/ray: about 3 minutes on 2 cores (its budget is 6)
@pytest.mark.timeout(660)
def test_the_ray_tests_pass_inside_a_loopback_only_namespace() -> None:
    token = uuid.uuid4().hex
    inner = f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider tests/ray"
    env = {
        **os.environ,
        "SHIPYARD_RAY_NETNS": "1",
        "SHIPYARD_RAY_SUITE": token,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("SHIPYARD_DB_URL", None)  # SQLite and file:// only: nothing outside is reachable
    env.pop("SHIPYARD_STORE_URL", None)
    try:
        out = subprocess.run(
            ["unshare", "-n", "sh", "-c", inner],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        left = _left_behind(token)
        for proc in left:  # by pid, only what this test started
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
    assert not left, f"processes were left behind: {[p.pid for p in left]}"
