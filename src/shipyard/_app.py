"""The composition root: the one place that knows how the host, the gateway and the UI fit.

``serve`` never imports ``ui`` or ``gateway`` (they are siblings or above it in the layers);
this module, above all three, builds the host from the settings, hands it the gateway to
mount, and mounts the UI over the host's live state:

>>> host = host_app(bind="127.0.0.1", port=8000)        # doctest: +SKIP
>>> run_host(host)                                      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from shipyard.config import Settings
from shipyard.serve.bodies import MAX_BODY_BUFFER
from shipyard.serve.host import GatewayFactory, Host
from shipyard.serve.invoke import MAX_BODY
from shipyard.ui import make_ui

if TYPE_CHECKING:
    from shipyard.gateway import Gateway
    from shipyard.keys import Guard
    from shipyard.store.meta import MetaStore


log = logging.getLogger("shipyard.serve")


def host_app(
    config: Settings | None = None,
    *,
    bind: str = "127.0.0.1",
    port: int = 8000,
    max_in_flight: int = 64,
    max_body: int = MAX_BODY,
    max_body_buffer: int = MAX_BODY_BUFFER,
    access_log: bool = False,
    gateway_config: str | os.PathLike[str] | None = None,
    ping_timeout: float = 5.0,
    reconcile_interval: float = 1.0,
) -> Host:
    """What ``shipyard serve`` runs: the host of ``config``'s stores, with the gateway of
    ``gateway_config`` (a YAML path) at ``/v1`` and ``/gateway``, and the UI at ``/ui``.

    Raises :class:`shipyard.gateway.errors.ConfigError` for an invalid gateway file.
    """

    _cache_keys()
    gateways: list[Gateway] = []  # the one the host builds, for the UI's gateway page
    host = Host.from_settings(
        config,
        bind=bind,
        port=port,
        max_in_flight=max_in_flight,
        max_body=max_body,
        max_body_buffer=max_body_buffer,
        access_log=access_log,
        gateway=_gateway(gateway_config, gateways) if gateway_config is not None else None,
        ping_timeout=ping_timeout,
        reconcile_interval=reconcile_interval,
    )
    ui = make_ui(
        host.meta,
        host.blobs,
        host.guard,
        home=host.home,
        live=host,
        gateway=gateways[0] if gateways else None,
    )
    host.mount("/ui", ui)
    return host


def _cache_keys() -> None:
    """Make the cache's key pair now if there is none: a worker isolates itself before it
    runs, and sees ``cache.pub`` only if it exists then (a pair made later by a flow would
    reach only workers started after it)."""
    from shipyard.cache.signing import SigningKeyError, signer

    try:
        signer()
    except SigningKeyError as exc:  # a readers-only setup: the public key comes from outside
        log.info("the host holds no cache signing key: %s", exc)


def _gateway(path: str | os.PathLike[str], built: list[Gateway]) -> GatewayFactory:
    """Builds the gateway of ``path`` over the host's guard and store (and keeps it in
    ``built``)."""

    def build(guard: Guard, meta: MetaStore, host_url: str) -> Gateway:
        from shipyard.gateway import Gateway

        made = Gateway(path, guard=guard, meta=meta, host_url=host_url)
        built.append(made)
        return made

    return build


__all__ = ["host_app"]
