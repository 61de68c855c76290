"""tests/retrieval/model loads the embedding model: collected only inside the loopback-only
network namespace that test_retrieval_offline.py makes for it (SHIPYARD_RETRIEVAL_NETNS=1),
so a hidden download fails at once instead of hanging."""

from __future__ import annotations

import os
from pathlib import Path


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    model_dir = Path(__file__).parent / "model"
    if collection_path == model_dir and os.environ.get("SHIPYARD_RETRIEVAL_NETNS") != "1":
        return True
    return None
