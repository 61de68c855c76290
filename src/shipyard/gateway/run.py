"""Run the gateway alone under uvicorn (``shipyard gateway``)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from shipyard.gateway.app import Gateway, describe

log = logging.getLogger("shipyard.gateway")


def run_gateway(
    config: Path, *, bind: str = "127.0.0.1", port: int = 8001, access_log: bool = True
) -> None:
    """Serve ``config``'s routes on ``bind:port`` until SIGINT/SIGTERM (SIGHUP reloads).

    Raises :class:`~shipyard.gateway.errors.ConfigError` for an invalid file.
    """
    from shipyard._server import log_to_stderr, server_for
    from shipyard.config import settings
    from shipyard.keys import Guard, KeyStore
    from shipyard.store.meta import MetaStore

    log_to_stderr()
    logging.getLogger("shipyard.gateway.access").setLevel(
        logging.INFO if access_log else logging.WARNING
    )
    conf = settings()
    meta = MetaStore.open(conf.db_url)
    keys = KeyStore(meta)
    try:
        guard = Guard.for_settings(keys, conf, bind_host=bind)
        # `service` routes reach the host the CLI talks to (SHIPYARD_URL, else the address
        # `shipyard serve` binds by default) unless the file names one (`host_url:`)
        gateway = Gateway(config, guard=guard, meta=meta, host_url=conf.url)
        print(
            f"shipyard gateway on http://{bind}:{port} with {len(gateway.table.routes)} "
            f"route(s) from {config}:\n{describe(gateway.table.config)}",
            file=sys.stderr,
            flush=True,
        )
        if not keys.has_keys_with_scope_prefix("route:"):
            print(
                "no route key exists yet: every gateway route needs one "
                "(shipyard keys create --scope route:<route>)",
                file=sys.stderr,
                flush=True,
            )
        server_for(gateway, bind, port).run()
    finally:
        keys.close()
        meta.close()


__all__ = ["run_gateway"]
