"""Runs tests/examples/docs_qa_eval_offline.py — the evaluation flow end to end, which loads
the embedding model — in a pytest of its own inside a loopback-only network namespace
(``unshare -n``, then ``ip link set lo up``): a download hidden in model loading fails at once
instead of hanging. About half a minute on the shared 2-core machine."""

from __future__ import annotations

import pytest

from support.netns import OFFLINE_FLAGS, OUTSIDE_STORES, pytest_in_netns


@pytest.mark.timeout(420)
def test_the_evaluation_flow_passes_inside_a_loopback_only_namespace() -> None:
    out = pytest_in_netns(
        "tests/examples/docs_qa_eval_offline.py",
        timeout=400,
        drop=(*OFFLINE_FLAGS, *OUTSIDE_STORES),  # the code under test sets what it needs
    )
    assert "1 passed" in out.stdout, out.stdout[-3000:]
