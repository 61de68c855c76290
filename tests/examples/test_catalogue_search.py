"""Runs tests/examples/catalogue_offline_loop.py (not collected on its own) in a pytest of its
own inside a loopback-only network namespace (``unshare -n``, then ``ip link set lo up``): the
embedding model is loaded by the test, the flow and the service's worker, and a download
hidden anywhere there fails at once instead of hanging. About 70 CPU-seconds (800 + 300
titles embedded, then the few of 320 the latest catalogue-index lacks)."""

from __future__ import annotations

import pytest

from support.netns import OFFLINE_FLAGS, pytest_in_netns


@pytest.mark.timeout(300)
def test_the_catalogue_loop_passes_inside_a_loopback_only_namespace() -> None:
    out = pytest_in_netns(
        "tests/examples/catalogue_offline_loop.py",
        timeout=280,
        env={"SHIPYARD_CATALOGUE_NETNS": "1"},
        drop=OFFLINE_FLAGS,  # the example must set what it needs itself
    )
    assert "2 passed" in out.stdout, out.stdout[-3000:]
