"""shipyard: from a Python class on a laptop to a hosted, scaled, monitored ML service.

Everything is imported lazily, so ``import shipyard`` costs almost nothing until a name is
used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "FlowSpec": "shipyard.flow.spec",
    "IncludeFile": "shipyard.flow.parameters",
    "JSONType": "shipyard.flow.parameters",
    "Parameter": "shipyard.flow.parameters",
    "Runner": "shipyard.flow.runner",
    "catch": "shipyard.flow.decorators",
    "current": "shipyard.flow.current",
    "environment": "shipyard.flow.decorators",
    "resources": "shipyard.flow.decorators",
    "retry": "shipyard.flow.decorators",
    "step": "shipyard.flow.decorators",
    "timeout": "shipyard.flow.decorators",
    "Flow": "shipyard.client",
    "Run": "shipyard.client",
    "Step": "shipyard.client",
    "Task": "shipyard.client",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from shipyard.client import Flow, Run, Step, Task
    from shipyard.flow.current import current
    from shipyard.flow.decorators import catch, environment, resources, retry, step, timeout
    from shipyard.flow.parameters import IncludeFile, JSONType, Parameter
    from shipyard.flow.runner import Runner
    from shipyard.flow.spec import FlowSpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
