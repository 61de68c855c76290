"""The Python client of deployed services: ``shipyard.connect(url, key)``.

```python
import shipyard

with shipyard.connect("http://127.0.0.1:8000", key) as client:
    client.ranker.home(profile_id="p1")       # help(client.ranker.home) shows its signature
```

Each service's endpoints are methods typed from the host's ``/openapi.json`` at run time.
An error answer raises :class:`shipyard.HTTPError`; the client's own failures are
:class:`RemoteError`\\ s (the tree is in :mod:`shipyard.remote.errors`). httpx is imported
on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_exports

_EXPORTS = {
    "Connection": "shipyard.remote.connection",
    "RemoteService": "shipyard.remote.connection",
    "connect": "shipyard.remote.connection",
    "ConnectionFailed": "shipyard.remote.errors",
    "NotAHost": "shipyard.remote.errors",
    "RemoteError": "shipyard.remote.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from shipyard.remote.connection import Connection as Connection
    from shipyard.remote.connection import RemoteService as RemoteService
    from shipyard.remote.connection import connect as connect
    from shipyard.remote.errors import ConnectionFailed as ConnectionFailed
    from shipyard.remote.errors import NotAHost as NotAHost
    from shipyard.remote.errors import RemoteError as RemoteError

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
