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
        host.on_start.append(lambda: _develop(host, file, cls, name, replicas))
    server = server_for(host, host.bind, host.port, limits or ConnectionLimits())
    print(
        f"shipyard host on http://{host.bind}:{host.port}  "
        f"(admin token: {host.home / 'admin.token'})",
        file=sys.stderr,
        flush=True,
    )
    server.run()


async def _develop(host: Host, file: Path, cls: str, name: str, replicas: int) -> None:
    from watchfiles import awatch

    from shipyard.flow.loader import module_name_for
    from shipyard.store.code import pack_code

    async def deploy() -> None:
        code = pack_code(file, module_name_for(file))
        response = await host.admin.deploy_code(
            name, f"{file.name}:{cls}", code, replicas=replicas, user="shipyard serve"
        )
        if response.status_code == 200:
            log.info("%s is live at http://%s:%s/%s/", name, host.bind, host.port, name)
        else:
            log.error("%s: %s", name, bytes(response.body).decode())

    await deploy()
    async for changes in awatch(file.parent):
        if any(path.endswith(".py") for _, path in changes):
            log.info("%s changed: redeploying %s", file.parent, name)
            await deploy()


__all__ = ["run_host", "server_for"]
