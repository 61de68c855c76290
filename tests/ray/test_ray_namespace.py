"""The namespace tests/ray runs in is real: nothing beyond loopback is reachable."""

from __future__ import annotations

import errno

from support.ray_cluster import metadata_probe_errno


def test_the_cloud_metadata_address_is_unreachable_at_once() -> None:
    assert metadata_probe_errno() == errno.ENETUNREACH
