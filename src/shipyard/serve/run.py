"""Run a host under uvicorn (:mod:`shipyard._server`), optionally with one service in
development mode: deployed at start and redeployed whenever its directory changes.

The host comes built (``shipyard serve`` builds it with :func:`shipyard._app.host_app`, which
mounts the gateway and the UI): this module only runs it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from shipyard._server import ConnectionLimits, server_for  # server_for: importable as before
from shipyard.serve.host import Host

log = logging.getLogger("shipyard.serve")


def run_host(
    host: Host,
    *,
    dev: tuple[Path, str, str, int] | None = None,
    limits: ConnectionLimits | None = None,
) -> None:
    """Serve ``host`` on its bind address and port until SIGINT/SIGTERM. ``dev``:
    ``(file, class, name, replicas)`` of a service to deploy now and on every change;
    ``limits``: the header and body timeouts and the connection cap (default: the defaults)."""
    if dev is not None:
        file, cls, name, replicas = dev
        from shipyard.serve.devloop import DevLoop

        host.on_start.append(DevLoop(host, file, cls, name, replicas).run)
    server = server_for(host, host.bind, host.port, limits or ConnectionLimits())
    print(
        f"shipyard host on http://{host.bind}:{host.port}  "
        f"(admin token: {host.home / 'admin.token'})",
        file=sys.stderr,
        flush=True,
    )
    server.run()


__all__ = ["run_host", "server_for"]
