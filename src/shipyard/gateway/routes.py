"""The live route table: validated routes, one connection pool per upstream origin, adapters.

A :class:`RouteTable` is immutable. A reload builds a new one with :meth:`RouteTable.build`,
reusing the previous table's :class:`Pool` for every origin that is still used, so keep-alive
connections survive a reload; the gateway swaps its reference in one assignment. Every request
:meth:`RouteTable.lease`\\ s the table it started on and finishes on it (fallbacks included);
a pool that no live table uses any more is closed once the last lease on the old table ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType

from shipyard.gateway.model import GatewayConfig, Route
from shipyard.gateway.providers import Adapter, adapter_for
from shipyard.gateway.upstream_http import Pool

log = logging.getLogger("shipyard.gateway")


class RouteTable:
    """Routes by name with their adapters; build with :meth:`build`."""

    def __init__(self, config: GatewayConfig, pools: Mapping[str, Pool]) -> None:
        self.config = config
        self.routes: Mapping[str, Route] = config.routes
        self.pools: Mapping[str, Pool] = MappingProxyType(dict(pools))
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
    def build(cls, config: GatewayConfig, previous: RouteTable | None = None) -> RouteTable:
        """A table for ``config``, reusing ``previous``'s pools for unchanged origins."""
        old = previous.pools if previous is not None else {}
        pools: dict[str, Pool] = {}
        for route in config.routes.values():
            origin = route.upstream.origin
            if origin not in pools:
                reused = old.get(origin)
                pools[origin] = reused if reused is not None and not reused.closed else Pool(origin)
        return cls(config, pools)

    @contextlib.contextmanager
    def lease(self) -> Iterator[RouteTable]:
        """Hold this table (and its pools) open while a request uses it."""
        self.in_flight += 1
        try:
            yield self
        finally:
            self.release()

    def acquire(self) -> None:
        self.in_flight += 1

    def release(self) -> None:
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


__all__ = ["Pool", "RouteTable"]
