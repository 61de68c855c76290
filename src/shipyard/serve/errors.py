"""The root of everything ``shipyard.serve`` raises on purpose, and the tree under it::

    ServeError                     root: catch it to catch any hosting failure
    ├── ServiceDefinitionError     a Service class that cannot be served (method, file:line, fix)
    ├── EndpointError              a request answered with an error: ``.status``, ``.type``,
    │                              ``.field``, ``.error_id`` (``{"error": {...}}``); in a
    │                              batch, ``.items`` names the bad items' indices. Also a
    │                              ``shipyard.HTTPError``, what user code raises (answers.py)
    ├── BatchSizeMismatch          a batched endpoint returned a list of the wrong length
    ├── BatchRetriesExhausted      a failed batch ran out of extra calls to find its bad items
    ├── ProtocolError              a frame between the host and a worker is malformed
    ├── WorkerExited               a test worker (:class:`~shipyard.serve.ServiceClient`) died
    ├── ReplicaGone                a replica died with requests in flight (``.reason``)
    ├── LoadFailed                 a new version's workers did not start (``.reason``)
    ├── AdminError                 an admin API request refused: ``.status``, ``.kind``
    ├── HostBusy                   another host runs on this home (``hostfile.py``)
    └── LifespanFailed             an app mounted in the host did not start or stop

The error *bodies* every HTTP surface sends are :mod:`shipyard.errors`' (``error_body``,
``error_response``, ``new_error_id``, ``JSON``), also importable from here.
"""

from __future__ import annotations

from shipyard.errors import JSON, error_body, error_response, new_error_id


class ServeError(Exception):
    """Root of the hosting exceptions; the message says what was wrong and the fix."""


__all__ = ["JSON", "ServeError", "error_body", "error_response", "new_error_id"]
