"""What the service client raises itself. An error *answer* from a service is a
:class:`shipyard.HTTPError` (status, message, field, type, the whole ``body``, ``headers``);
these are the failures around it::

    RemoteError              the client could not get an answer it understands
    ├── ConnectionFailed     the host could not be reached (refused, DNS, timeout); names the URL
    └── NotAHost             the URL answered, but not with a shipyard host's /openapi.json
"""

from __future__ import annotations

__all__ = ["ConnectionFailed", "NotAHost", "RemoteError"]


class RemoteError(Exception):
    """The service client could not get an answer it understands; ``url`` is where it asked."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class ConnectionFailed(RemoteError, ConnectionError):
    """The host at ``url`` could not be reached, or did not answer in time."""


class NotAHost(RemoteError):
    """``url`` answered, but not with the services of a shipyard host."""
