"""Events in the metadata database: what ``@trigger(event=...)`` schedules wait for.

An event is a name and a JSON object (its payload), kept durably in the ``events`` table
with who published it, from where (``source``: ``cli``, ``api``, ``registry``, ``cache``) and
when. The scheduler reads them in id order and fires every schedule whose ``@trigger`` names
one (:mod:`shipyard.schedules.events`).

>>> publish_event(meta, "ratings-updated", {"date": "2026-03-01"}, source="cli",
...               user="ann")                                      # doctest: +SKIP
(EventRecord(id=1, name='ratings-updated', ...), True)

The registry writes ``model.registered`` and ``model.alias-moved`` with :func:`insert_event`
in the transaction of the change itself, so an alias move and its event commit together.

Rules (checked by :func:`check_event`): a name is 1-128 letters, digits and ``_ . : -``,
starting with a letter or digit; a payload is a JSON object of at most
:data:`MAX_PAYLOAD_BYTES` bytes once encoded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from shipyard.store.errors import StoreError
from shipyard.store.schema import events

if TYPE_CHECKING:
    from shipyard.store.meta import MetaStore

#: the largest payload, as encoded JSON (an event says what happened; data goes elsewhere)
MAX_PAYLOAD_BYTES = 64 * 1024
#: the longest idempotency id
MAX_IDEMPOTENCY_KEY = 255
#: where events come from
SOURCES = ("cli", "api", "registry", "cache")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


class EventError(StoreError, ValueError):
    """An event that cannot be published; the message names the name, payload or id."""


@dataclass(frozen=True)
class EventRecord:
    """One published event."""

    id: int
    name: str
    payload: dict[str, Any]
    source: str
    published_by: str
    published_at: datetime
    idempotency_key: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "payload": self.payload,
            "source": self.source,
            "published_by": self.published_by,
            "published_at": self.published_at.isoformat(),
            "idempotency_key": self.idempotency_key,
        }


def check_name(name: Any) -> str:
    """``name`` if it is a valid event name, else :class:`EventError` saying the rule."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise EventError(
            f"event name {name!r}: use 1-128 letters, digits, '_', '.', ':', '-' "
            "(starting with a letter or digit), e.g. ratings-updated"
        )
    return name


def check_event(name: Any, payload: Any, idempotency_key: Any = None) -> dict[str, Any]:
    """Check an event before it is stored; returns the payload as a plain dict."""
    check_name(name)
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise EventError(
            f'event {name!r}: the payload is a JSON object ({{"date": "2026-03-01"}}), '
            f"not {type(payload).__name__}"
        )
    try:
        text = json.dumps(dict(payload), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EventError(f"event {name!r}: the payload is not JSON: {exc}") from None
    size = len(text.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise EventError(
            f"event {name!r}: the payload is {size} bytes of JSON, over the limit of "
            f"{MAX_PAYLOAD_BYTES} (64 KiB): publish a reference (a path, a run, a version), "
            "not the data"
        )
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY
    ):
        raise EventError(
            f"event {name!r}: the idempotency id is a string of 1-{MAX_IDEMPOTENCY_KEY} "
            f"characters, not {idempotency_key!r}"
        )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _record(row: Row[Any]) -> EventRecord:
    return EventRecord(
        id=int(row.id),
        name=row.name,
        payload=dict(row.payload or {}),
        source=row.source,
        published_by=row.published_by,
        published_at=row.published_at,
        idempotency_key=row.idempotency_key,
    )


def insert_event(
    conn: Connection,
    name: str,
    payload: Mapping[str, Any],
    *,
    source: str,
    user: str,
    now: datetime | None = None,
    idempotency_key: str | None = None,
) -> int | None:
    """Add an event in the caller's transaction; returns its id, or None when an event with
    ``idempotency_key`` exists already (then nothing is added)."""
    body = check_event(name, payload, idempotency_key)
    values = {
        "name": name,
        "payload": body,
        "source": source,
        "published_by": user[:255],
        "published_at": now or datetime.now(UTC),
        "idempotency_key": idempotency_key,
    }
    if idempotency_key is None:
        return int(conn.execute(events.insert().values(values).returning(events.c.id)).scalar_one())
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt: Any = sqlite_insert(events).values(values).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(events).values(values).on_conflict_do_nothing()
    found = conn.execute(stmt.returning(events.c.id)).scalar()
    return None if found is None else int(found)


def publish_event(
    meta: MetaStore,
    name: str,
    payload: Mapping[str, Any] | None,
    *,
    source: str,
    user: str,
    now: datetime | None = None,
    idempotency_key: str | None = None,
) -> tuple[EventRecord, bool]:
    """Store one event; returns it and whether it is new (False: an event with this
    ``idempotency_key`` was published before, and that one is returned)."""
    with meta.writer.begin() as conn:
        new_id = insert_event(
            conn,
            name,
            payload or {},
            source=source,
            user=user,
            now=now,
            idempotency_key=idempotency_key,
        )
        query = sa.select(events).where(
            events.c.id == new_id
            if new_id is not None
            else events.c.idempotency_key == idempotency_key
        )
        row = conn.execute(query).one()
    return _record(row), new_id is not None


def events_after(conn: Connection, after: int, limit: int) -> list[EventRecord]:
    """Events with an id above ``after``, in id order, at most ``limit``."""
    rows = conn.execute(
        sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(limit)
    )
    return [_record(r) for r in rows]


def recent_events(
    meta: MetaStore, *, name: str | None = None, limit: int = 50
) -> list[EventRecord]:
    """The newest events (of ``name``, if given), newest first."""
    query = sa.select(events)
    if name is not None:
        query = query.where(events.c.name == name)
    with meta.reader.connect() as conn:
        return [_record(r) for r in conn.execute(query.order_by(events.c.id.desc()).limit(limit))]


def get_events(meta: MetaStore, ids: Sequence[int]) -> list[EventRecord]:
    with meta.reader.connect() as conn:
        rows = conn.execute(sa.select(events).where(events.c.id.in_(list(ids))))
        return sorted((_record(r) for r in rows), key=lambda e: e.id)


__all__ = [
    "MAX_PAYLOAD_BYTES",
    "SOURCES",
    "EventError",
    "EventRecord",
    "check_event",
    "check_name",
    "events_after",
    "get_events",
    "insert_event",
    "publish_event",
    "recent_events",
]
