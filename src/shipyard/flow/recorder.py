"""The recorder: a process that writes a run's metadata to its SQLite file, so that the
runtime never waits for a commit.

The runtime forks it as a run starts. It applies the writes the runtime sends, in order,
with ``store/sqlite_writer.py`` (the standard library's ``sqlite3``: no SQLAlchemy to
import, which would cost more than the rest of a short run): whatever has arrived is applied
in one transaction, so a burst of task ends costs one commit. Messages over a socketpair
(length-prefixed pickles, as the zygote's)::

    runtime  -> recorder  ("writes", [(method, args, kwargs), ...]) | ("flush", token)
    recorder -> runtime   ("flushed", token) | ("failed", reason)

The runtime collects its writes and sends them once per scheduling step (:meth:`Recorder.send`,
one message for a task's end, its successors and their start). ``flush`` is answered once
every write sent before it is committed. A write that fails
rolls its batch back; the recorder says why and exits, and the runtime stops the run with
that reason. When the runtime closes its end (or dies), the recorder applies what it has,
closes the store and exits.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
from typing import Any

from shipyard.flow.exceptions import RecorderFailed
from shipyard.flow.zygote import MessageReader, fork_server, send_message

_EXITED = "the metadata recorder exited unexpectedly"


class Recorder:
    """Handle on the recorder process, used by the runtime (through ``ledger.Ledger``)."""

    def __init__(self, url: str) -> None:
        """Fork the recorder (before the zygote, which must close :attr:`sock`)."""
        self.url = url
        self.pid, self.sock = fork_server(lambda sock: _serve(sock, url))
        self._reader = MessageReader()
        self._tokens = itertools.count()
        self._outbox: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._failure: str | None = None
        self._closed = False

    def discard(self) -> None:
        """End a recorder that has nothing to write, without waiting for its imports."""
        os.kill(self.pid, signal.SIGTERM)
        try:
            self.close()
        except RecorderFailed:
            pass

    def fileno(self) -> int:
        return self.sock.fileno()

    def write(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """``<method>(*args, **kwargs)`` of the writer (MetaStore's signature), to send with
        the next :meth:`send`."""
        self._outbox.append((method, args, kwargs))

    def send(self) -> None:
        """Send the writes collected so far; they are applied in order, soon."""
        if self._outbox:
            writes, self._outbox = self._outbox, []
            self._send(("writes", writes))

    def flush(self) -> None:
        """Wait until every write so far is committed."""
        self.send()
        token = next(self._tokens)
        self._send(("flush", token))
        while True:
            messages = self._receive(block=True)
            if messages is None:
                raise RecorderFailed(_EXITED)
            if ("flushed", token) in messages:
                return

    def check(self) -> None:
        """Raise :class:`RecorderFailed` if the recorder failed (call when readable)."""
        if self._receive(block=False) is None:
            raise RecorderFailed(_EXITED)

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            send_message(self.sock, message)
        except OSError:  # it is gone: say why, if it said
            self._receive(block=False)
            raise RecorderFailed(_EXITED) from None

    def _receive(self, block: bool) -> list[tuple[Any, ...]] | None:
        """What the recorder said (None: it has closed its end)."""
        try:
            data = self.sock.recv(1 << 16, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return []
        except ConnectionResetError:  # it exited with our messages unread
            data = b""
        if not data:
            return None
        messages = self._reader.feed(data)
        for message in messages:
            if message[0] == "failed":
                self._failure = f"cannot record the run's metadata: {message[1]}"
                raise RecorderFailed(self._failure)
        return messages

    def close(self) -> None:
        """Let the recorder apply everything and exit; raise if it failed."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._failure is None:
                self.send()
            self.sock.shutdown(socket.SHUT_WR)
            while self._receive(block=True) is not None:
                pass
        except RecorderFailed:
            pass  # remembered in _failure
        finally:
            self.sock.close()
            _, status = os.waitpid(self.pid, 0)
        if self._failure is not None or os.waitstatus_to_exitcode(status) != 0:
            raise RecorderFailed(self._failure or _EXITED)


def _fail(sock: socket.socket, exc: Exception) -> None:
    """Say why, then wait for the runtime to close its end (so that it reads this first)."""
    send_message(sock, ("failed", f"{type(exc).__name__}: {exc}"))
    while sock.recv(1 << 20):
        pass


def _serve(sock: socket.socket, url: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runtime handles Ctrl-C, then closes
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        from shipyard.store.bootstrap import sqlite_file
        from shipyard.store.sqlite_writer import SqliteWriter

        path = sqlite_file(url)
        if path is None:
            raise ValueError(f"the recorder writes SQLite files only, not {url}")
        writer = SqliteWriter(path)
    except Exception as exc:  # noqa: BLE001 - reported to the runtime
        _fail(sock, exc)
        raise
    reader = MessageReader()
    try:
        while True:
            data = sock.recv(1 << 20)
            messages = reader.feed(data) if data else []
            while True:  # take everything already there into this batch
                try:
                    more = sock.recv(1 << 20, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if not more:
                    data = b""
                    break
                messages += reader.feed(more)
            try:
                with writer.transaction():
                    for message in messages:
                        if message[0] == "writes":
                            for method, args, kwargs in message[1]:
                                getattr(writer, method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported to the runtime
                if data:
                    _fail(sock, exc)
                else:  # the runtime has closed its end and waits for our exit
                    send_message(sock, ("failed", f"{type(exc).__name__}: {exc}"))
                raise
            for message in messages:
                if message[0] == "flush":
                    send_message(sock, ("flushed", message[1]))
            if not data:  # the runtime closed its end: all is applied
                return
    finally:
        writer.close()


__all__ = ["Recorder", "RecorderFailed"]
