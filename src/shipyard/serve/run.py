"""Run the host under uvicorn (uvloop + httptools), optionally with one service in
development mode: deployed at start and redeployed whenever its directory changes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from shipyard.serve.host import Host

log = logging.getLogger("shipyard.serve")


def server_for(app: Any, bind: str, port: int) -> Any:
    """The uvicorn server the host and the gateway run on: uvloop and httptools, our own
    access log (uvicorn's is off), warnings only."""
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


def run_host(
    *,
    bind: str = "127.0.0.1",
    port: int = 8000,
    dev: tuple[Path, str, str, int] | None = None,
    max_in_flight: int = 64,
    access_log: bool = True,
    gateway_config: Path | None = None,
) -> None:

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    host = Host(
        bind=bind,
        port=port,
        max_in_flight=max_in_flight,
        gateway_config=gateway_config,
        access_log=access_log,
    )
    if dev is not None:
        host.on_start.append(lambda: _develop(host, *dev))
    server = server_for(host, bind, port)
    print(
        f"shipyard host on http://{bind}:{port}  (admin token: {host.config.home / 'admin.token'})",
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


__all__ = ["run_host"]
