"""The one way shipyard runs an ASGI app: uvicorn with uvloop and httptools, logging to stderr.

``shipyard serve`` (the host), ``shipyard gateway`` and ``shipyard ui`` all start here, so
they log alike and answer alike:

>>> log_to_stderr()                                           # doctest: +SKIP
>>> server_for(app, "127.0.0.1", 8000).run()                  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp


def log_to_stderr() -> None:
    """Our log lines (INFO and up, with a timestamp and the logger's name) on stderr."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )


def server_for(app: ASGIApp, bind: str, port: int) -> uvicorn.Server:
    """The uvicorn server ``app`` runs on: uvloop and httptools, the app's own lifespan, our
    own access log (uvicorn's is off), uvicorn's warnings only."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=bind,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
    return uvicorn.Server(config)


__all__ = ["log_to_stderr", "server_for"]
