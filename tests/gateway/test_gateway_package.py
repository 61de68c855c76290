"""The gateway package's public surface."""

from __future__ import annotations

import shipyard.gateway as gateway


def test_all_is_sorted_and_importable() -> None:
    assert gateway.__all__ == sorted(gateway.__all__)
    for name in gateway.__all__:
        assert getattr(gateway, name) is not None
