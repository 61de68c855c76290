"""Hosting: a ``Service`` class of ``@endpoint`` methods, served by worker processes.

```python
from shipyard.serve import Service, endpoint

class Echo(Service):
    @endpoint
    def echo(self, text: str) -> dict[str, str]:
        return {"text": text}
```

Exceptions: everything hosting raises on purpose is a ``ServeError`` (the tree is drawn in
:mod:`shipyard.serve.errors`), among them ``ServiceDefinitionError`` (a class that cannot be
served; raised before any request, naming the method, file:line and the fix).

Only ``service.py`` is imported eagerly; ``ServiceClient`` (the in-process test client)
loads pydantic on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_exports
from shipyard.serve.errors import ServeError
from shipyard.serve.service import Service, ServiceDefinitionError, endpoint

__all__ = ["ServeError", "Service", "ServiceClient", "ServiceDefinitionError", "endpoint"]

_LAZY = {"ServiceClient": "shipyard.serve.testing"}

if TYPE_CHECKING:
    from shipyard.serve.testing import ServiceClient as ServiceClient


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
