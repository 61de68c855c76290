"""The live route table: validated routes, one pooled client per upstream origin, adapters.

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

import httpx

from shipyard.gateway.config import GatewayConfig, Route
from shipyard.gateway.providers import Adapter, adapter_for

log = logging.getLogger("shipyard.gateway")

#: per upstream origin: enough connections for a busy gateway, kept alive across requests
POOL_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=60)
#: connection pools (httpx transports) per origin, used in turn; see :class:`Pool`
POOL_SHARDS = 8


class Pool:
    """HTTP/1.1 keep-alive connections to one upstream origin.

    The adapters build requests with :attr:`client` (its default headers and timeouts); the
    proxy sends them with :meth:`transport`, skipping the client's auth, redirect and
    cookie-jar layers: nothing to authenticate or follow there, and an upstream's cookies must
    never be replayed for the next caller.

    The connections are split over :data:`POOL_SHARDS` httpx transports taken in turn:
    httpcore's pool scans all its connections (a readability poll for each idle one, and a
    count of the idle ones for each) when a request starts and ends, which costs
    O(connections²) per request; eight smaller pools keep that small at 32 callers and more.
    """

    def __init__(self, origin: str, shards: int = POOL_SHARDS) -> None:
        self.origin = origin
        limits = httpx.Limits(
            max_connections=max(1, (POOL_LIMITS.max_connections or 512) // shards),
            max_keepalive_connections=max(
                1, (POOL_LIMITS.max_keepalive_connections or 128) // shards
            ),
            keepalive_expiry=POOL_LIMITS.keepalive_expiry,
        )
        self.transports = [
            httpx.AsyncHTTPTransport(limits=limits, trust_env=False) for _ in range(shards)
        ]
        self._next = 0
        self.client = httpx.AsyncClient(
            transport=self.transports[0],
            follow_redirects=False,  # a redirect could point anywhere: never followed
            trust_env=False,  # no proxy or netrc from the environment
            headers={"accept-encoding": "identity", "user-agent": "shipyard-gateway"},
        )
        self.closed = False

    def transport(self) -> httpx.AsyncHTTPTransport:
        """The next connection pool to send a request on."""
        self._next = (self._next + 1) % len(self.transports)
        return self.transports[self._next]

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.client.aclose()  # closes transports[0]
            for transport in self.transports[1:]:
                await transport.aclose()


class RouteTable:
    """Routes by name with their adapters; build with :meth:`build`."""

    def __init__(self, config: GatewayConfig, pools: Mapping[str, Pool]) -> None:
        self.config = config
        self.routes: Mapping[str, Route] = config.routes
        self.pools: Mapping[str, Pool] = MappingProxyType(dict(pools))
        self.adapters: Mapping[str, Adapter] = MappingProxyType(
            {
                name: adapter_for(route, pools[route.upstream.origin].client)
                for name, route in config.routes.items()
            }
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


__all__ = ["POOL_LIMITS", "POOL_SHARDS", "Pool", "RouteTable"]
