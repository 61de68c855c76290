"""Where the runtime's metadata writes go, and the ids it gives runs and tasks.

Opening the store means importing SQLAlchemy (~0.1 s, longer than most of a short flow),
and every write is a transaction. On the default SQLite store the runtime waits for
neither: ``bootstrap.IdReserver`` (standard library only) creates the schema if needed and
reserves the run's id and blocks of task ids, and the writes go to the recorder process
(``recorder.py``), which applies them with ``store/sqlite_writer.py`` (standard library
only, checked row for row against MetaStore) beside the running tasks and commits whatever
has arrived in one transaction. A task's blobs are written before it reports, so its row is
only ever written after them; a run that dies before its rows are written leaves only
unreferenced blobs (``shipyard gc`` removes them).

A write whose outcome the runtime must know at once (a model registration the registry may
refuse) and the reads of a resume use :meth:`Ledger.store`: everything sent so far is
committed first. Anything other than a SQLite file at the schema's head (PostgreSQL, a
database to migrate) is written by the runtime itself, in its own transactions, and the
database numbers runs and tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from socket import socket
from typing import TYPE_CHECKING, Any

from shipyard.flow.recorder import Recorder
from shipyard.store.bootstrap import IdReserver, sqlite_file

if TYPE_CHECKING:
    from shipyard.store.meta import MetaStore

#: task ids reserved at a time
TASK_ID_BLOCK = 64
#: the writes that record when something happened (their ``at=``: when it was sent)
_TIMED = frozenset(
    {"create_run", "create_tasks", "start_attempt", "finish_attempt", "finish_run",
     "kill_unfinished_tasks"}
)  # fmt: skip


class Ledger:
    """The runtime's view of the metadata store (see the module docstring)."""

    def __init__(self, url: str, *, direct: bool = False, recorder: Recorder | None = None) -> None:
        """Fork the recorder at once for a SQLite file (the zygote must then close
        :attr:`sockets`), or take ``recorder``, one forked earlier (``shipyard._entry``);
        call :meth:`bootstrap` next. ``direct``: the runtime writes itself (resume reads
        the origin run first)."""
        self.url = url
        self._meta: MetaStore | None = None
        self._reserver: IdReserver | None = None
        if recorder is not None and (direct or recorder.url != url):
            recorder.discard()  # the run writes directly, or elsewhere: nothing for it
            recorder = None
        self.recorder = recorder
        if self.recorder is None and not direct and sqlite_file(url) is not None:
            self.recorder = Recorder(url)
        self._reserved: range = range(0)
        self._free = 0  # how many ids at the end of _reserved are not used yet

    @property
    def sockets(self) -> list[socket]:
        """The runtime's connections no other process may hold open."""
        return [] if self.recorder is None else [self.recorder.sock]

    def bootstrap(self) -> None:
        """Reserve ids in the SQLite file (creating its schema if new); if it needs a
        migration instead, let the recorder go and write directly."""
        if self.recorder is None:
            return
        self._reserver = IdReserver.open(self.url)
        if self._reserver is None:  # opening the store directly says why, if it fails
            self.recorder.discard()
            self.recorder = None

    # -- ids ------------------------------------------------------------------------------
    def run_id(self) -> int | None:
        """A reserved id for the new run, or None (``create_run`` numbers it)."""
        return None if self._reserver is None else self._reserver.reserve("runs", 1)[0]

    def task_ids(self, count: int) -> list[int] | None:
        """``count`` reserved task ids, or None (``create_tasks`` numbers them)."""
        if self._reserver is None:
            return None
        if self._free < count:  # a new block, right after the ids used so far
            self._reserver.give_back("tasks", self._unused())
            self._reserved = self._reserver.reserve("tasks", max(count, TASK_ID_BLOCK))
            self._free = len(self._reserved)
        start = len(self._reserved) - self._free
        self._free -= count
        return list(self._reserved[start : start + count])

    def _unused(self) -> range:
        return self._reserved[len(self._reserved) - self._free :]

    # -- writes ---------------------------------------------------------------------------
    def write(self, method: str, *args: Any, **kwargs: Any) -> None:
        """``MetaStore.<method>(*args, **kwargs)``: sent to the recorder, or done now."""
        if method in _TIMED:
            kwargs.setdefault("at", datetime.now(UTC))
        if self.recorder is not None:
            self.recorder.write(method, args, kwargs)
        else:
            getattr(self._store(), method)(*args, **kwargs)

    def send(self) -> None:
        """Hand the writes made so far to the recorder (once per scheduling step)."""
        if self.recorder is not None:
            self.recorder.send()

    def transaction(self) -> Any:
        """The writes in the block in one transaction (the recorder batches on its own)."""
        return nullcontext() if self.recorder is not None else self._store().transaction()

    def store(self) -> MetaStore:
        """The store, with every write sent so far committed (waits for the recorder)."""
        if self.recorder is not None:
            self.recorder.flush()
        return self._store()

    def _store(self) -> MetaStore:
        if self._meta is None:
            from shipyard.store.meta import MetaStore

            self._meta = MetaStore.open(self.url)
        return self._meta

    @contextmanager
    def closing(self) -> Iterator[None]:
        """Close at the end of the block: the recorder applies everything; unused task ids
        go back; the store closes."""
        try:
            yield
        finally:
            try:
                if self.recorder is not None:
                    self.recorder.close()
            finally:
                if self._reserver is not None:
                    self._reserver.give_back("tasks", self._unused())
                    self._reserver.close()
                if self._meta is not None:
                    self._meta.close()
