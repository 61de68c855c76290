"""Runs tests/retrieval/model — everything that loads the embedding model — in a pytest of
its own inside a loopback-only network namespace (``unshare -n``, then ``ip link set lo
up``): a download hidden anywhere in model loading fails at once instead of hanging, and
``HF_HUB_OFFLINE``/``local_files_only`` are proven, not assumed. The model suite embeds one
small corpus once (about a minute on the shared 2-core machine)."""

from __future__ import annotations

import pytest

from support.netns import OFFLINE_FLAGS, OUTSIDE_STORES, pytest_in_netns


@pytest.mark.timeout(420)
def test_the_model_tests_pass_inside_a_loopback_only_namespace() -> None:
    # the code under test must set the offline flags itself
    pytest_in_netns(
        "tests/retrieval/model",
        timeout=400,
        env={"SHIPYARD_RETRIEVAL_NETNS": "1"},
        drop=(*OFFLINE_FLAGS, *OUTSIDE_STORES),
    )
