"""The Redis (or Valkey) cache backend: ``redis://[:password@]host:port/db[?prefix=shipyard]``
(``rediss://`` for TLS). Needs Redis >= 6.2 or Valkey (``SET ... GET`` in the write script);
a single server or a primary, not Redis Cluster.

Layout, every key under ``{prefix}:{namespace}:``::

    live               the live version id (the pointer readers resolve)
    seq                counter behind new version ids
    versions           hash  version -> JSON {created_at, meta}   (begun versions)
    published          hash  version -> UNIX time of the first publish
    pubmeta            hash  version -> JSON meta merged in at publish
    n:{version}        how many distinct keys the version holds
    dropping           set of versions whose data is being deleted
    v:{version}:{key}  the data (``key`` as given, binary-safe)

and ``{prefix}:namespaces``, the set of namespace names. Writes are Lua scripts over chunks of
1,000 keys (one round trip each; a published version refuses writes, atomically), reads are one
MGET, publish/set_live/drop are one atomic script each. Reads use short socket timeouts and no
retries, so a dead or hung server costs a caller at most the read timeout; bulk writes use a
longer timeout and retry a chunk twice (rewriting a key is idempotent and counted once).
Maintenance (re-signing values) scans a version with SCAN + MGET and rewrites values with a
compare-and-set script.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.commands.core import Script
from redis.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.retry import Retry

from shipyard.cache.backends.base import BackendUnavailable, CacheError, VersionInfo

__all__ = ["RedisBackend", "mask_url"]

CHUNK = 1_000
# a leading "_" is for the cache's own namespaces (per-namespace settings: "_settings.NS")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")
_VERSION = re.compile(r"[0-9]{1,18}")
_OWN_OPTIONS = {"prefix", "read_timeout", "write_timeout", "connect_timeout"}

_BEGIN = """
local v = ARGV[2]
if v == '' then
  for _ = 1, 100 do
    v = string.format('%06d', redis.call('INCR', KEYS[1]))
    if redis.call('HSETNX', KEYS[2], v, ARGV[3]) == 1 then break end
    v = ''
  end
  if v == '' then return redis.error_reply('SHIPYARD no free version id') end
else
  if tonumber(v) > tonumber(redis.call('GET', KEYS[1]) or '0') then
    redis.call('SET', KEYS[1], tostring(tonumber(v)))
  end
  if redis.call('HSETNX', KEYS[2], v, ARGV[3]) == 0 then
    return redis.error_reply('SHIPYARD version ' .. v .. ' already exists')
  end
end
redis.call('SADD', KEYS[3], ARGV[1])
return v
"""

# KEYS: versions, published, count, data keys...; ARGV: version, values...
_PUT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return redis.error_reply('SHIPYARD version ' .. ARGV[1] .. ' does not exist (dropped?)')
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return redis.error_reply('SHIPYARD version ' .. ARGV[1] .. ' is published and read-only')
end
local n = 0
for i = 4, #KEYS do
  if not redis.call('SET', KEYS[i], ARGV[i - 2], 'GET') then n = n + 1 end
end
if n > 0 then redis.call('INCRBY', KEYS[3], n) end
return n
"""

# KEYS: versions, data keys...; ARGV: version, old1, new1, old2, new2, ...
_REPLACE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return redis.error_reply('SHIPYARD version ' .. ARGV[1] .. ' does not exist (dropped?)')
end
local n = 0
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[2 * i - 2] then
    redis.call('SET', KEYS[i], ARGV[2 * i - 1])
    n = n + 1
  end
end
return n
"""

# KEYS: versions, published, pubmeta, live; ARGV: version, now, meta JSON or ''
_PUBLISH = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return redis.error_reply('SHIPYARD version ' .. ARGV[1] .. ' does not exist')
end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[3]) end
redis.call('SET', KEYS[4], ARGV[1])
return 1
"""

# KEYS: versions, published, live; ARGV: version
_SET_LIVE = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
    return redis.error_reply('SHIPYARD version ' .. ARGV[1] .. ' does not exist')
  end
  return redis.error_reply('SHIPYARD version ' .. ARGV[1] .. ' was never published')
end
redis.call('SET', KEYS[3], ARGV[1])
return 1
"""

# KEYS: live, versions, published, pubmeta, count, dropping; ARGV: version
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.error_reply('SHIPYARD version ' .. ARGV[1] .. ' is live')
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[5])
redis.call('SADD', KEYS[6], ARGV[1])
return 1
"""


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def _float_option(url: str, name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number <= 0:
        raise CacheError(f"cache URL {url}: {name}={value!r} must be a positive number of seconds")
    return number


class RedisBackend:
    """A cache backend on one Redis/Valkey server.

    >>> backend = RedisBackend("redis://127.0.0.1:6379/0?prefix=shipyard")
    >>> version = backend.begin("home-rows", {"run": "RankerFlow/12"})
    >>> backend.put_many("home-rows", version, [(b"p1", b"...")])
    >>> backend.publish("home-rows", version).keys
    1

    Timeouts (seconds) come from the arguments, else the URL's ``read_timeout``,
    ``write_timeout`` and ``connect_timeout`` options, else 0.2 / 30 / 0.2.
    """

    def __init__(
        self,
        url: str,
        *,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        self.url = mask_url(url)
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise CacheError(f"cache URL {self.url}: scheme must be redis:// or rediss://")
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(
            name
            for name in options
            if name not in _OWN_OPTIONS
            and name not in URL_QUERY_ARGUMENT_PARSERS
            and not name.startswith("ssl_")
        )
        if unknown:
            raise CacheError(
                f"cache URL {self.url}: unknown option(s) {', '.join(unknown)}; shipyard's are "
                f"{', '.join(sorted(_OWN_OPTIONS))}, the rest are redis-py's"
            )
        self.prefix = options.pop("prefix", "shipyard")
        if not _NAME.fullmatch(self.prefix):
            raise CacheError(
                f"cache URL {self.url}: prefix={self.prefix!r} must match {_NAME.pattern}"
            )
        self.read_timeout = read_timeout or _float_option(
            self.url, "read_timeout", options.pop("read_timeout", "0.2")
        )
        self.write_timeout = write_timeout or _float_option(
            self.url, "write_timeout", options.pop("write_timeout", "30")
        )
        self.connect_timeout = connect_timeout or _float_option(
            self.url, "connect_timeout", options.pop("connect_timeout", "0.2")
        )
        for name in _OWN_OPTIONS:
            options.pop(name, None)
        self._raw_url = url
        self._redis_url = urlunsplit(parts._replace(query=urlencode(options)))
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._read_client: redis.Redis | None = None
        self._write_client: redis.Redis | None = None
        self._scripts: dict[str, Script] = {}
        self._data_prefixes: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:
        return f"RedisBackend({self.url!r})"

    def with_read_timeout(self, seconds: float) -> RedisBackend:
        """The same server with its own connections, reading with a ``seconds`` socket timeout
        (the replicated backend's deadline)."""
        return RedisBackend(
            self._raw_url,
            read_timeout=seconds,
            write_timeout=self.write_timeout,
            connect_timeout=min(self.connect_timeout, seconds),
        )

    # -- connections --------------------------------------------------------------------

    def _make(self, timeout: float, retries: int) -> redis.Redis:
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries) if retries else None
        return redis.Redis.from_url(
            self._redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=self.connect_timeout,
            health_check_interval=30,
            retry=retry or Retry(NoBackoff(), 0),
            retry_on_timeout=bool(retries),
        )

    def _check_fork(self) -> None:
        # A pool inherited through fork shares sockets with the parent: build fresh ones.
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._read_client = self._write_client = None
                    self._scripts = {}
                    self._pid = os.getpid()

    def _reads(self) -> redis.Redis:
        self._check_fork()
        client = self._read_client
        if client is None:
            with self._lock:
                if self._read_client is None:
                    self._read_client = self._make(self.read_timeout, retries=0)
                client = self._read_client
        return client

    def _writes(self) -> redis.Redis:
        self._check_fork()
        client = self._write_client
        if client is None:
            with self._lock:
                if self._write_client is None:
                    self._write_client = self._make(self.write_timeout, retries=2)
                client = self._write_client
        return client

    def _script(self, source: str) -> Script:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._writes().register_script(source)
        return script

    def _unavailable(self, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"Redis cache backend {self.url} is unavailable: {type(exc).__name__}: {exc} "
            "(is redis-server running and reachable? check SHIPYARD_CACHE_URL)"
        )

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError) as exc:
            raise self._unavailable(exc) from exc
        except redis.ResponseError as exc:
            message = str(exc).removeprefix("SHIPYARD ")
            raise CacheError(f"{what} on {self.url}: {message}") from exc

    # -- keys -----------------------------------------------------------------------------

    def _ns(self, namespace: str) -> bytes:
        if not _NAME.fullmatch(namespace):
            raise CacheError(
                f"cache namespace {namespace!r} is not valid: use letters, digits, '.', '_' and '-'"
                " (up to 200), starting with a letter or digit"
            )
        return f"{self.prefix}:{namespace}:".encode()

    def _check_version(self, version: str) -> bytes:
        if not _VERSION.fullmatch(version):
            raise CacheError(f"cache version {version!r} is not valid: it is a string of digits")
        return version.encode()

    # -- writing --------------------------------------------------------------------------

    def begin(self, namespace: str, meta: dict[str, Any], version: str | None = None) -> str:
        """Start a new (unpublished) version and return its id (``version``, if given)."""
        base = self._ns(namespace)
        if version is not None:
            self._check_version(version)
        info = json.dumps({"created_at": time.time(), "meta": meta})
        with self._errors(f"cannot begin a version of {namespace!r}"):
            result = self._script(_BEGIN)(
                keys=[base + b"seq", base + b"versions", f"{self.prefix}:namespaces".encode()],
                args=[namespace, version or "", info],
                client=self._writes(),
            )
        return result.decode() if isinstance(result, bytes) else str(result)

    def put_many(self, namespace: str, version: str, items: Iterable[tuple[bytes, bytes]]) -> int:
        """Write ``items`` in chunks of 1,000, one round trip each."""
        base = self._ns(namespace)
        data = base + b"v:" + self._check_version(version) + b":"
        fixed = [base + b"versions", base + b"published", base + b"n:" + version.encode()]
        script = self._script(_PUT)
        written = 0
        iterator = iter(items)
        with self._errors(f"cannot write version {version} of {namespace!r}"):
            client = self._writes()
            while chunk := list(islice(iterator, CHUNK)):
                script(
                    keys=fixed + [data + key for key, _ in chunk],
                    args=[version, *(value for _, value in chunk)],
                    client=client,
                )
                written += len(chunk)
        return written

    def publish(
        self, namespace: str, version: str, meta: dict[str, Any] | None = None
    ) -> VersionInfo:
        """Make ``version`` live in one atomic script (and merge ``meta`` into its meta)."""
        base = self._ns(namespace)
        self._check_version(version)
        with self._errors(f"cannot publish version {version} of {namespace!r}"):
            self._script(_PUBLISH)(
                keys=[base + b"versions", base + b"published", base + b"pubmeta", base + b"live"],
                args=[version, repr(time.time()), json.dumps(meta) if meta else ""],
                client=self._writes(),
            )
        for info in self.versions(namespace):
            if info.version == version:
                return info
        raise CacheError(f"version {version} of {namespace!r} vanished while being published")

    def set_live(self, namespace: str, version: str) -> None:
        """Point ``namespace`` at the published ``version`` (rollback)."""
        base = self._ns(namespace)
        self._check_version(version)
        with self._errors(f"cannot make version {version} of {namespace!r} live"):
            self._script(_SET_LIVE)(
                keys=[base + b"versions", base + b"published", base + b"live"],
                args=[version],
                client=self._writes(),
            )

    def drop(self, namespace: str, version: str) -> None:
        """Forget ``version`` at once, then UNLINK its data in batches (SCAN). Dropping a
        missing version is a no-op; an interrupted drop is finished by calling it again."""
        base = self._ns(namespace)
        self._check_version(version)
        with self._errors(f"cannot drop version {version} of {namespace!r}"):
            client = self._writes()
            self._script(_DROP)(
                keys=[
                    base + b"live",
                    base + b"versions",
                    base + b"published",
                    base + b"pubmeta",
                    base + b"n:" + version.encode(),
                    base + b"dropping",
                ],
                args=[version],
                client=client,
            )
            batch: list[bytes] = []
            for key in client.scan_iter(match=base + b"v:" + version.encode() + b":*", count=5000):
                batch.append(key)
                if len(batch) >= CHUNK:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
            client.srem(base + b"dropping", version)

    # -- reading --------------------------------------------------------------------------

    def live(self, namespace: str) -> str | None:
        """The live version id (one GET)."""
        key = self._ns(namespace) + b"live"
        try:
            value = self._reads().get(key)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        return value.decode() if isinstance(value, bytes) else value

    def get_many(self, namespace: str, version: str, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in ``version`` (one MGET)."""
        if not keys:
            return []
        data = self._data_prefixes.get((namespace, version))
        if data is None:
            data = self._ns(namespace) + b"v:" + self._check_version(version) + b":"
            if len(self._data_prefixes) > 1024:
                self._data_prefixes.clear()
            self._data_prefixes[namespace, version] = data
        try:
            values = self._reads().mget([data + key for key in keys])
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._unavailable(exc) from exc
        return cast("list[bytes | None]", values)

    def versions(self, namespace: str) -> list[VersionInfo]:
        """Every version of ``namespace``, oldest first."""
        base = self._ns(namespace)
        with self._errors(f"cannot list the versions of {namespace!r}"):
            pipe = self._reads().pipeline(transaction=True)
            pipe.hgetall(base + b"versions")
            pipe.hgetall(base + b"published")
            pipe.hgetall(base + b"pubmeta")
            begun, published, pubmeta = pipe.execute()
            ids = sorted((bytes(v).decode() for v in begun), key=int)
            counts = self._reads().mget([base + b"n:" + v.encode() for v in ids]) if ids else []
        infos = []
        for version, count in zip(ids, counts, strict=True):
            raw = json.loads(begun[version.encode()])
            meta = dict(raw.get("meta") or {})
            extra = pubmeta.get(version.encode())
            if extra is not None:
                meta.update(json.loads(extra))
            stamp = published.get(version.encode())
            infos.append(
                VersionInfo(
                    version=version,
                    created_at=float(raw["created_at"]),
                    published_at=None if stamp is None else float(stamp),
                    keys=int(count or 0),
                    meta=meta,
                )
            )
        return infos

    def scan(self, namespace: str, version: str) -> Iterator[list[tuple[bytes, bytes]]]:
        """SCAN over the version's data keys, then one MGET per batch (a key may come twice,
        as SCAN promises no better)."""
        base = self._ns(namespace)
        data = base + b"v:" + self._check_version(version) + b":"
        with self._errors(f"cannot scan version {version} of {namespace!r}"):
            client = self._writes()  # the long timeout: a maintenance job, not a page
            if not client.hexists(base + b"versions", version):
                raise CacheError(f"version {version!r} of cache namespace {namespace!r} not found")
            keys = client.scan_iter(match=data + b"*", count=CHUNK)
            while batch := list(islice(keys, CHUNK)):
                values = cast("list[bytes | None]", client.mget(batch))
                yield [
                    (bytes(key)[len(data) :], value)
                    for key, value in zip(batch, values, strict=True)
                    if value is not None
                ]

    def replace_values(
        self, namespace: str, version: str, changes: Iterable[tuple[bytes, bytes, bytes]]
    ) -> int:
        """Compare-and-set in one script per 100 changes (old and new values travel)."""
        base = self._ns(namespace)
        data = base + b"v:" + self._check_version(version) + b":"
        script = self._script(_REPLACE)
        replaced = 0
        iterator = iter(changes)
        with self._errors(f"cannot rewrite values of version {version} of {namespace!r}"):
            client = self._writes()
            while chunk := list(islice(iterator, 100)):
                args: list[bytes | str] = [version]
                for _, old, new in chunk:
                    args += [old, new]
                replaced += int(
                    script(
                        keys=[base + b"versions", *(data + key for key, _, _ in chunk)],
                        args=args,
                        client=client,
                    )
                )
        return replaced

    def namespaces(self) -> list[str]:
        """Every namespace that ever had a version begun."""
        with self._errors("cannot list the namespaces"):
            members = self._reads().smembers(f"{self.prefix}:namespaces".encode())
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    def close(self) -> None:
        """Close this process's connections (the backend reconnects if used again)."""
        with self._lock:
            clients = [self._read_client, self._write_client]
            self._read_client = self._write_client = None
            self._scripts = {}
        for client in clients:
            if client is not None:
                client.close()
                client.connection_pool.disconnect()
