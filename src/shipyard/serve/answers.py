"""What an exception raised in an endpoint answers: an error status of its own, or a 500.

Three kinds of exception are an endpoint's *answer*, sent with their status and never
logged as a failure of the endpoint (a 5xx one is logged, with its error id):

* :class:`shipyard.HTTPError` (``raise HTTPError(422, "expected 4 features", field="x")``);
* :class:`EndpointError`, the host's own (request validation, 400/422), an ``HTTPError``;
* Starlette's ``HTTPException`` and so FastAPI's, which subclasses it: what a user moving
  an app from FastAPI writes. ``status_code`` is the status, ``detail`` the message (JSON
  text when it is not a string), the type is the status's (``shipyard.errors.status_type``).

Anything else is a bug of the endpoint: a 500 ``internal_error`` with an error id, the
traceback in the logs only (see ``dispatch.py``).

Headers (``HTTPError.headers``, ``HTTPException.headers``) are not sent: a worker's answer
to the host carries a status and a body only (``protocol.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from shipyard.errors import HTTPError
from shipyard.serve.errors import ServeError

__all__ = ["EndpointError", "as_http_error"]


class EndpointError(HTTPError, ServeError):
    """A request answered with an error: the host's own ``HTTPError``, with the error type
    given first (``invalid_json``, ``validation_error``, ``batch_size_mismatch``...).

    User code raises :class:`shipyard.HTTPError`; this class is what the host raises,
    and it still works in an endpoint::

        raise EndpointError(422, "bad_pair", "pair 3 has no user", items=[3])
    """

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        field: str | None = None,
        error_id: str | None = None,
        items: Sequence[int] | None = None,
    ) -> None:
        super().__init__(status, message, field, type=type, items=items, error_id=error_id)


def as_http_error(exc: BaseException) -> HTTPError | None:
    """The answer ``exc`` stands for, or None when it is a failure of the endpoint (a 500).

    Starlette is not imported for this: if ``starlette.exceptions`` is not loaded, the
    endpoint cannot have raised its ``HTTPException``.
    """
    if isinstance(exc, HTTPError):
        return exc
    module = sys.modules.get("starlette.exceptions")
    if module is None or not isinstance(exc, module.HTTPException):
        return None
    status = exc.status_code
    if not isinstance(status, int) or not 400 <= status <= 599:
        return None  # an HTTPException(302) is no error answer: the endpoint's bug, a 500
    detail = exc.detail
    message = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    return HTTPError(status, message, headers=exc.headers)
