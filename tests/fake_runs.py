"""``load_fakes()``: tests/client/fakes.py (``FakeRuns``: runs, tasks and live logs written
through the stores the way the runtime does), for tests of any package.

It is imported by path, under one module name, because tests/client is on ``sys.path`` only
while its own tests are collected.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_fakes() -> ModuleType:
    name = "shipyard_test_fakes"
    if name not in sys.modules:
        path = Path(__file__).parent / "client" / "fakes.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
