"""The live route table: validated routes, one transport per upstream origin, adapters.

A :class:`RouteTable` is immutable. A reload builds a new one with :meth:`RouteTable.build`,
reusing the previous table's transport (by default a :class:`Pool`) for every origin that is
still used, so keep-alive connections survive a reload; the gateway swaps its reference in one
assignment. Every request :meth:`RouteTable.lease`\\ s the table it started on and finishes on
it (fallbacks included); a transport that no live table uses any more is closed once the last
lease on the old table ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType

from shipyard.gateway.model import GatewayConfig, Route
from shipyard.gateway.providers import Adapter, adapter_for
from shipyard.gateway.transport import Transport, TransportFactory
from shipyard.gateway.upstream_http import Pool

log = logging.getLogger("shipyard.gateway")


class RouteTable:
    """Routes by name with their adapters and the transport of each upstream origin; build
    with :meth:`build`."""

    def __init__(
        self,
        config: GatewayConfig,
        transports: Mapping[str, Transport],
        make_transport: TransportFactory = Pool,
    ) -> None:
        self.config = config
        self.routes: Mapping[str, Route] = config.routes
        self.transports: Mapping[str, Transport] = MappingProxyType(dict(transports))
        #: makes the transport of an origin that a reload adds
        self.make_transport = make_transport
        self.adapters: Mapping[str, Adapter] = MappingProxyType(
            {name: adapter_for(route) for name, route in config.routes.items()}
        )
        self.chains: Mapping[str, tuple[Route, ...]] = MappingProxyType(
            {name: config.chain(name) for name in config.routes}
        )
        self.in_flight = 0
        self.retired = False
        self.on_drained: Callable[[RouteTable], None] | None = None

    @classmethod
    def build(
        cls,
        config: GatewayConfig,
        previous: RouteTable | None = None,
        *,
        transport: TransportFactory | None = None,
    ) -> RouteTable:
        """A table for ``config``, reusing ``previous``'s transports for unchanged origins.

        ``transport`` makes the transport of a new origin: by default ``previous``'s factory,
        else :class:`Pool`.
        """
        make = transport or (previous.make_transport if previous is not None else Pool)
        old = previous.transports if previous is not None else {}
        transports: dict[str, Transport] = {}
        for route in config.routes.values():
            origin = route.upstream.origin
            if origin not in transports:
                reused = old.get(origin)
                if reused is None or getattr(reused, "closed", False):  # a Pool says so
                    reused = make(origin)
                transports[origin] = reused
        return cls(config, transports, make)

    @contextlib.contextmanager
    def lease(self) -> Iterator[RouteTable]:
        """Hold this table (and its transports) open while a request uses it."""
        self.in_flight += 1
        try:
            yield self
        finally:
            self.release()

    def acquire(self) -> None:
        """One more request uses this table (pair it with :meth:`release`)."""
        self.in_flight += 1

    def release(self) -> None:
        """A request that :meth:`acquire`\\ d the table is done with it."""
        self.in_flight -= 1
        if self.in_flight == 0 and self.retired and self.on_drained is not None:
            callback, self.on_drained = self.on_drained, None
            callback(self)

    def retire(self, on_drained: Callable[[RouteTable], None]) -> None:
        """Mark replaced; ``on_drained(self)`` runs once no request uses the table."""
        self.retired = True
        if self.in_flight == 0:
            on_drained(self)
        else:
            self.on_drained = on_drained


__all__ = ["Pool", "RouteTable", "Transport"]
