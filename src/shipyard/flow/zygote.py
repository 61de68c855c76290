"""The zygote: a process forked early from the runtime, before it opens a database
connection, starts a thread or an event loop, that forks one child per task attempt.

Tasks therefore start in ~1 ms with the flow module and shipyard already imported, and none
inherits a lock held by a thread that does not exist in the child. Each task leads its own
process group, so a timeout or Ctrl-C kills the task *and* whatever it started. If the
runtime dies (even by SIGKILL) the zygote sees its socket close, kills every task group and
exits: no orphans.

Protocol over a socketpair: length-prefixed pickles.
  runtime -> zygote  ("spawn", token, payload)
  zygote  -> runtime ("started", token, pid) | ("exited", token, pid, exitcode)
"""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

_HEADER = struct.Struct("!I")


def _send(sock: socket.socket, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=5)
    sock.sendall(_HEADER.pack(len(data)) + data)


class _Reader:
    """Accumulates bytes from a socket and yields whole messages."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[Any, ...]]:
        self.buffer += data
        messages = []
        while len(self.buffer) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self.buffer)
            if len(self.buffer) < _HEADER.size + length:
                break
            body = bytes(self.buffer[_HEADER.size : _HEADER.size + length])
            del self.buffer[: _HEADER.size + length]
            messages.append(pickle.loads(body))
        return messages


class Zygote:
    """Handle on the zygote process, used by the runtime."""

    def __init__(self, target: Callable[[Any], int]) -> None:
        parent, child = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the zygote
            parent.close()
            code = 0
            try:
                _serve(child, target)
            except BaseException:  # noqa: BLE001 - last resort, never return into the caller
                code = 1
            finally:
                os._exit(code)
        child.close()
        self.pid = pid
        self.sock = parent
        self._reader = _Reader()

    def fileno(self) -> int:
        return self.sock.fileno()

    def spawn(self, token: int, payload: Any) -> None:
        _send(self.sock, ("spawn", token, payload))

    def receive(self) -> list[tuple[Any, ...]]:
        """Messages available now (call when the socket is readable)."""
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("the zygote process exited")
        return self._reader.feed(data)

    def close(self) -> None:
        """Close the socket; the zygote kills any task left and exits."""
        try:
            self.sock.close()
        finally:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


def _serve(sock: socket.socket, target: Callable[[Any], int]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runtime handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "sock")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    reader = _Reader()
    children: dict[int, int] = {}

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            token = children.pop(pid, None)
            if token is not None:
                _send(sock, ("exited", token, pid, os.waitstatus_to_exitcode(status)))

    def spawn(token: int, payload: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the task
            code = 1
            try:
                os.setpgid(0, 0)
                selector.close()
                sock.close()
                os.close(wake_r)
                os.close(wake_w)
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                code = target(payload)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first, or already exited
        children[pid] = token
        _send(sock, ("started", token, pid))

    while True:
        for key, _ in selector.select():
            if key.data == "wake":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                reap()
                continue
            data = sock.recv(1 << 16)
            if not data:  # the runtime is gone: take every task down with it
                for pid in list(children):
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
                for pid in list(children):
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
                return
            for message in reader.feed(data):
                if message[0] == "spawn":
                    spawn(message[1], message[2])
        reap()
