"""Runs tests/ray, which start Ray, in a pytest of their own inside a loopback-only network
namespace (``unshare -n``, then ``ip link set lo up``): Ray's processes and connections
can reach nothing but 127.0.0.1 there (its cloud-metadata probe fails at once), while the
other tests keep reaching the servers scripts/services.sh started outside it. One Ray
cluster serves all of tests/ray (a session fixture, support/ray_cluster.py)."""

from __future__ import annotations

import sys
import uuid

import psutil
import pytest

from support.netns import OUTSIDE_STORES, run_in_netns


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


# the whole of tests/ray: about 3 minutes on 2 cores for flows (their budget is 6), and
# about 3.8 more for services on Ray, test_ray_serve.py (its budget is 4); 12 minutes in
# all were measured on the shared machine at a load average of 20
@pytest.mark.timeout(1260)
def test_the_ray_tests_pass_inside_a_loopback_only_namespace() -> None:
    token = uuid.uuid4().hex
    env = {"SHIPYARD_RAY_NETNS": "1", "SHIPYARD_RAY_SUITE": token, "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        # SQLite and file:// only: nothing outside the namespace is reachable
        out = run_in_netns(
            f"{sys.executable} -m pytest -q -p no:cacheprovider tests/ray",
            timeout=1200,
            env=env,
            drop=OUTSIDE_STORES,
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
