"""Runs tests/ray, which start Ray, in a pytest of their own inside a loopback-only network
namespace (``unshare -n``, then ``ip link set lo up``): Ray's processes and connections
can reach nothing but 127.0.0.1 there (its cloud-metadata probe fails at once), while the
other tests keep reaching the servers scripts/services.sh started outside it. One Ray
cluster serves all of tests/ray (a session fixture, support/ray_cluster.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def _ray_processes() -> set[int]:
    names = ("raylet", "gcs_server", "plasma_store")
    return {p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "") in names}


def test_the_ray_tests_pass_inside_a_loopback_only_namespace() -> None:
    before = _ray_processes()
    inner = f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider tests/ray"
    env = {**os.environ, "SHIPYARD_RAY_NETNS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("SHIPYARD_DB_URL", None)  # SQLite and file:// only: nothing outside is reachable
    env.pop("SHIPYARD_STORE_URL", None)
    out = subprocess.run(
        ["unshare", "-n", "sh", "-c", inner],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
    assert _ray_processes() <= before, "Ray processes were left behind"
