"""The checks behind ``shipyard doctor``: each looks at one part of a setup (the metadata
database, the blob store, the cache, Ray, the home's permissions) and says OK, WARN, FAIL or
SKIP, with what to fix.

A check never changes anything it finds, except for the temporary probes it removes again: a
database write rolled back, a blob written, read and deleted, a file made and removed in the
cache directory. Every network check has a short timeout, so a dead server costs seconds.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: clock skew against the database above which a check warns, and fails (seconds)
SKEW_WARN_SECONDS = 1.0
SKEW_FAIL_SECONDS = 30.0
#: the secrets SHIPYARD_HOME may hold, each to be readable by its owner only
SECRETS = ("admin.token", "cache.key", "cache.hmac.key", "meta.db")
UPGRADE_COMMAND = "shipyard db upgrade"


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass
class Result:
    """One line of the report: ``check`` (what was looked at), its ``status``, what was
    found (``detail``), what to do about it (``fix``, empty when nothing) and how long it
    took."""

    check: str
    status: Status
    detail: str
    fix: str = ""
    ms: float = 0.0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["ms"] = round(self.ms, 1)
        return data


class _Failed(Exception):
    """Raised inside a check: stop it with this result."""

    def __init__(self, status: Status, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.status, self.detail, self.fix = status, detail, fix


def timed(
    check: str,
    body: Callable[[], tuple[Status, str, str]],
    *,
    deadline: float | None = None,
    late: str = "",
) -> Result:
    """Run ``body`` (returning status, detail, fix) as the check named ``check``; an
    unexpected exception is a FAIL naming it. With ``deadline`` (seconds), ``body`` runs in a
    daemon thread, and one that has not finished by then is a FAIL saying ``late`` (for
    clients whose own timeouts cannot be set short, as boto3's retries)."""
    start = time.perf_counter()
    outcome: list[tuple[Status, str, str]] = []

    def run() -> None:
        try:
            outcome.append(body())
        except _Failed as exc:
            outcome.append((exc.status, exc.detail, exc.fix))
        except Exception as exc:  # a check must report, never crash the report
            outcome.append((Status.FAIL, f"{type(exc).__name__}: {exc}", ""))

    if deadline is None:
        run()
    else:
        # a daemon: a hung client must not keep the command from exiting
        thread = threading.Thread(target=run, name=f"doctor {check}", daemon=True)
        thread.start()
        thread.join(deadline)
    status, detail, fix = (
        outcome[0] if outcome else (Status.FAIL, f"no answer within {deadline:g} s", late)
    )
    return Result(check, status, detail, fix, (time.perf_counter() - start) * 1000)


# --- permissions ------------------------------------------------------------------------------
def raw_home() -> Path:
    """SHIPYARD_HOME as configured, *without* :func:`shipyard.config.home`, which would create
    it or tighten its mode before the check could see it."""
    return Path(os.environ.get("SHIPYARD_HOME") or Path.home() / ".shipyard").expanduser()


def permissions(home: Path) -> Iterator[Result]:
    """The home must be 0700 (WARN otherwise: shipyard tightens its own on next use); each
    secret in it 0600 (FAIL otherwise: someone else may have read it)."""
    start = time.perf_counter()
    if not home.exists():
        yield Result(
            "home permissions",
            Status.WARN,
            f"{home} does not exist yet",
            "any shipyard command creates it (mode 0700)",
        )
        return
    mode = stat.S_IMODE(home.stat().st_mode)
    ms = (time.perf_counter() - start) * 1000
    if mode & 0o077:
        yield Result(
            "home permissions",
            Status.WARN,
            f"{home} is mode {mode:04o}, open to group or others (shipyard tightens a home of "
            "its own user when it next opens it)",
            f"chmod 700 {home}",
            ms,
        )
    else:
        yield Result("home permissions", Status.OK, f"{home} is mode {mode:04o}", "", ms)
    for name in SECRETS:
        path = home / name
        if not path.exists():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            yield Result(
                f"secret {name}",
                Status.FAIL,
                f"{path} is mode {mode:04o}: group or others may read it",
                f"chmod 600 {path} (and replace the secret if someone else may have read it)",
            )
        else:
            yield Result(f"secret {name}", Status.OK, f"{path} is mode {mode:04o}")


# --- the metadata database --------------------------------------------------------------------
def shown_url(url: str) -> str:
    """``url`` with its password hidden (for every message)."""
    import sqlalchemy as sa

    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<a database URL that cannot be parsed>"


def _clean(message: str, url: str) -> str:
    """An error message with the URL's password removed, should the driver have quoted it."""
    import sqlalchemy as sa

    try:
        password = sa.make_url(url).password
    except Exception:
        return message
    first = message.strip().splitlines()[0] if message.strip() else message
    return first.replace(str(password), "***") if password else first


def database(url: str, timeout: float) -> list[Result]:
    """Reachable (within ``timeout``), migrated to this code's head, writable (an insert
    rolled back), and on PostgreSQL the clock skew against the server's."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from shipyard.store.bootstrap import sqlite_file
    from shipyard.store.migrations import current_revision
    from shipyard.store.schema import HEAD_REVISION, flows

    shown = shown_url(url)
    results: list[Result] = []
    engine: sa.Engine | None = None

    def reachable() -> tuple[Status, str, str]:
        nonlocal engine
        parsed = sa.make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            path = sqlite_file(url)
            if path is not None and not path.exists():
                raise _Failed(
                    Status.WARN,
                    f"{shown}: no database file yet",
                    f"the first `shipyard` command creates it, or run `{UPGRADE_COMMAND}`",
                )
            engine = sa.create_engine(parsed, poolclass=NullPool, connect_args={"timeout": timeout})
        elif backend == "postgresql":
            engine = sa.create_engine(
                parsed, poolclass=NullPool, connect_args={"connect_timeout": max(1, round(timeout))}
            )
        else:
            raise _Failed(
                Status.FAIL,
                f"{shown}: unsupported database backend {backend!r}",
                "set SHIPYARD_DB_URL to sqlite:///path/meta.db or "
                "postgresql+psycopg://user@host/db",
            )
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            engine = None
            raise _Failed(
                Status.FAIL,
                f"{shown}: {_clean(str(exc.orig), url)}",
                "check that the "
                "server runs and that this machine may connect (host, port, user, "
                "password, pg_hba.conf), then set SHIPYARD_DB_URL",
            ) from None
        return Status.OK, f"{shown} answered", ""

    results.append(timed("database reachable", reachable))
    if engine is None:
        return results
    try:
        migrated = [False]

        def revision() -> tuple[Status, str, str]:
            assert engine is not None
            with engine.connect() as conn:
                current = current_revision(conn)
            if current == HEAD_REVISION:
                migrated[0] = True
                return Status.OK, f"at revision {current}, this shipyard's head", ""
            if current is None:
                return (
                    Status.FAIL,
                    f"{shown} has no shipyard tables",
                    f"run `{UPGRADE_COMMAND}` (with the same SHIPYARD_DB_URL)",
                )
            if current.isdigit() and HEAD_REVISION.isdigit() and current > HEAD_REVISION:
                return (
                    Status.FAIL,
                    f"at revision {current}, newer than this shipyard's {HEAD_REVISION}",
                    "upgrade shipyard here (pip install -U shipyard) to "
                    "the version the other machines run",
                )
            return (
                Status.FAIL,
                f"at revision {current}, this shipyard expects {HEAD_REVISION}",
                f"run `{UPGRADE_COMMAND}` (with the same SHIPYARD_DB_URL)",
            )

        results.append(timed("database migrated", revision))

        def writable() -> tuple[Status, str, str]:
            assert engine is not None
            if not migrated[0]:
                return Status.SKIP, "not migrated: nothing to write to", ""
            with engine.connect() as conn:
                transaction = conn.begin()
                try:
                    name = f"_shipyard_doctor_{uuid.uuid4().hex[:12]}"
                    conn.execute(flows.insert().values(name=name, created_at=datetime.now(UTC)))
                finally:
                    transaction.rollback()
            return Status.OK, "an insert went through (rolled back)", ""

        results.append(timed("database writable", writable))
        results.append(timed("clock skew", lambda: _skew(engine)))
    finally:
        engine.dispose()
    return results


def _skew(engine: Any) -> tuple[Status, str, str]:
    import sqlalchemy as sa

    if engine.dialect.name != "postgresql":
        return Status.SKIP, "SQLite runs on this machine: there is no other clock", ""
    with engine.connect() as conn:
        before = time.time()
        server: datetime = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
        after = time.time()
    return judge_skew(server.timestamp() - (before + after) / 2)


def judge_skew(skew: float) -> tuple[Status, str, str]:
    """The verdict on the database's clock being ``skew`` seconds ahead of this machine's
    (negative: behind): WARN above :data:`SKEW_WARN_SECONDS`, FAIL above
    :data:`SKEW_FAIL_SECONDS`."""
    side = "behind" if skew > 0 else "ahead of"
    detail = f"this machine is {abs(skew):.3f} s {side} the database"
    fix = "run a time daemon (chrony, systemd-timesyncd) on this machine and the database's"
    if abs(skew) > SKEW_FAIL_SECONDS:
        return Status.FAIL, detail + f" (more than {SKEW_FAIL_SECONDS:g} s)", fix
    if abs(skew) > SKEW_WARN_SECONDS:
        return Status.WARN, detail + f" (more than {SKEW_WARN_SECONDS:g} s)", fix
    return Status.OK, detail, ""


# --- the blob store ---------------------------------------------------------------------------
def blob_store(url: str, timeout: float) -> Result:
    """A temporary blob written, read back and deleted, within three times ``timeout`` (three
    requests)."""
    from shipyard.store.blobs import open_blob_store

    def body() -> tuple[Status, str, str]:
        fix = (
            "make the directory writable by this user, or set SHIPYARD_STORE_URL elsewhere"
            if url.startswith("file://")
            else "check the bucket exists and the credentials (AWS_* variables) allow "
            "s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on its prefix"
        )
        try:
            store = open_blob_store(url)
        except ValueError as exc:
            raise _Failed(Status.FAIL, str(exc), "set SHIPYARD_STORE_URL") from None
        payload = f"shipyard doctor {uuid.uuid4()}".encode()
        key = hashlib.sha256(payload).hexdigest()
        try:
            store.put(key, [payload])
        except Exception as exc:
            raise _Failed(Status.FAIL, f"{url}: cannot write: {exc}", fix) from None
        try:
            back = bytes(store.get(key))
        except Exception as exc:
            raise _Failed(Status.FAIL, f"{url}: wrote but cannot read back: {exc}", fix) from None
        finally:
            try:
                store.delete(key)
            except Exception as exc:
                raise _Failed(Status.FAIL, f"{url}: cannot delete: {exc}", fix) from None
        if back != payload:
            return Status.FAIL, f"{url}: read back other bytes than were written", ""
        return Status.OK, f"{url}: wrote, read and deleted a blob", ""

    return timed(
        "blob store",
        body,
        deadline=3 * timeout,
        late=f"check that {url} is reachable from here (SHIPYARD_S3_ENDPOINT_URL, network)",
    )


# --- the cache --------------------------------------------------------------------------------
def cache(url: str, timeout: float) -> list[Result]:
    """Each region of the cache URL: an LMDB directory writable, a Redis server answering PING."""
    from shipyard.cache.backends import mask

    parts = [part.strip() for part in url.split(",") if part.strip()]
    name = "cache" if len(parts) == 1 else "cache region {}"
    return [
        timed(name.format(i), functools.partial(_cache_region, part, mask(part), timeout))
        for i, part in enumerate(parts, 1)
    ]


def _cache_region(url: str, shown: str, timeout: float) -> tuple[Status, str, str]:
    scheme = url.partition("://")[0]
    if scheme == "lmdb":
        path = Path(urlsplit(url).path)
        probe = path if path.exists() else next(p for p in path.parents if p.exists())
        name = probe / f".shipyard-doctor-{uuid.uuid4().hex[:12]}"
        try:
            name.write_bytes(b"")
            name.unlink()
        except OSError as exc:
            raise _Failed(
                Status.FAIL,
                f"{shown}: {probe} is not writable: {exc}",
                f"make {probe} writable by this user, or set SHIPYARD_CACHE_URL elsewhere",
            ) from None
        made = "" if path.exists() else " (created on first use)"
        return Status.OK, f"{shown}: directory writable{made}", ""
    if scheme in ("redis", "rediss"):
        import redis

        parts = urlsplit(url)
        # the cache's own options (prefix, timeouts) are not redis-py's
        query = [(k, v) for k, v in parse_qsl(parts.query) if not k.endswith("timeout")]
        query = [(k, v) for k, v in query if k != "prefix"]
        client = redis.Redis.from_url(
            urlunsplit(parts._replace(query=urlencode(query))),
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
        )
        try:
            client.ping()
        except redis.RedisError as exc:
            raise _Failed(
                Status.FAIL,
                f"{shown}: no answer to PING: {exc}",
                "start the Redis server or fix SHIPYARD_CACHE_URL (host, port, password)",
            ) from None
        finally:
            client.close()
        return Status.OK, f"{shown}: answered PING", ""
    if scheme == "memory":
        return Status.SKIP, f"{shown}: an in-process cache (tests only)", ""
    raise _Failed(
        Status.FAIL,
        f"unknown cache URL {shown!r}",
        "set SHIPYARD_CACHE_URL to "
        "lmdb:///path or redis://host:port/db (comma-separated for regions)",
    )


# --- Ray --------------------------------------------------------------------------------------
def ray(executor: str | None, address: str | None) -> Result:
    """Only when Ray is configured: importable, and its version and Python's reported. The
    cluster itself is not contacted yet (the Ray executor is coming)."""

    def body() -> tuple[Status, str, str]:
        import platform
        from importlib import metadata, util

        if executor != "ray" and not address:
            return Status.SKIP, "not configured (SHIPYARD_EXECUTOR, SHIPYARD_RAY_ADDRESS)", ""
        if util.find_spec("ray") is None:
            return Status.FAIL, "Ray is configured but not installed", "pip install 'shipyard[ray]'"
        version = metadata.version("ray")
        where = f" for {address}" if address else " (a local Ray per run)"
        return (
            Status.OK,
            f"ray {version} on Python {platform.python_version()}{where}; "
            "the cluster was not contacted",
            "",
        )

    return timed("ray", body)


__all__ = [
    "Result",
    "Status",
    "blob_store",
    "cache",
    "database",
    "judge_skew",
    "permissions",
    "ray",
    "raw_home",
]
