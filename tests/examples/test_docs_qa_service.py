"""Runs tests/examples/docs_qa_offline_loop.py (not collected on its own: the docs_qa example
end to end, flow -> a real host -> /search and /ask over HTTP) in a pytest of its own inside a
loopback-only network namespace (``unshare -n``, then ``ip link set lo up``): the embedding
model is loaded by the flow and by the service's workers, and a download hidden anywhere
there fails at once instead of hanging. About a minute on the shared 2-core machine."""

from __future__ import annotations

import pytest

from support.netns import OFFLINE_FLAGS, pytest_in_netns


@pytest.mark.timeout(420)
def test_the_docs_qa_loop_passes_inside_a_loopback_only_namespace() -> None:
    out = pytest_in_netns(
        "tests/examples/docs_qa_offline_loop.py",
        timeout=400,
        env={"SHIPYARD_DOCSQA_NETNS": "1"},
        drop=OFFLINE_FLAGS,  # the example must set what it needs itself
    )
    assert "1 passed" in out.stdout, out.stdout[-3000:]
