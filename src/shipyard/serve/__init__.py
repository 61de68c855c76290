"""Hosting: a ``Service`` class of ``@endpoint`` methods, served by worker processes.

```python
from shipyard.serve import Service, endpoint

class Echo(Service):
    @endpoint
    def echo(self, text: str) -> dict[str, str]:
        return {"text": text}
```

Exceptions: ``ServiceDefinitionError`` (a class that cannot be served; raised before any
request, naming the method, file:line and the fix).

Only ``service.py`` is imported eagerly; ``ServiceClient`` (the in-process test client)
loads pydantic on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from shipyard.serve.service import Service, ServiceDefinitionError, endpoint

__all__ = ["Service", "ServiceClient", "ServiceDefinitionError", "endpoint"]

_LAZY = {"ServiceClient": "shipyard.serve.testing"}

if TYPE_CHECKING:
    from shipyard.serve.testing import ServiceClient as ServiceClient


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
