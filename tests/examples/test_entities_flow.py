"""Runs tests/examples/entities_offline_loop.py (not collected on its own) in a pytest of its
own inside a loopback-only network namespace (``unshare -n``, then ``ip link set lo up``): the
flow trains the screenplay NER model on a small generated set (600 inputs, 600 steps: about
a minute of CPU for the whole test), evaluates it on the gold set and registers it; the
registered pipeline is loaded from its files. Anything that tried to download a model would
fail at once instead of hanging. The timeouts leave room for a machine shared with others."""

from __future__ import annotations

import pytest

from support.netns import OFFLINE_FLAGS, pytest_in_netns


@pytest.mark.timeout(500)
def test_the_entities_flow_passes_inside_a_loopback_only_namespace() -> None:
    out = pytest_in_netns(
        "tests/examples/entities_offline_loop.py",
        timeout=480,
        env={"SHIPYARD_ENTITIES_NETNS": "1"},
        drop=OFFLINE_FLAGS,  # the example must set what it needs itself
    )
    assert "1 passed" in out.stdout, out.stdout[-3000:]
