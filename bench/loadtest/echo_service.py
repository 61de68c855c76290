"""The host's trivial endpoint, for the accuracy check of bench/loadtest.py: the server,
not the client, is the limit.

    shipyard deploy bench/loadtest/echo_service.py:Echo --name echo
"""

from __future__ import annotations

from shipyard.serve import Service, endpoint


class Echo(Service):
    @endpoint
    def echo(self, x: int) -> int:
        return x
