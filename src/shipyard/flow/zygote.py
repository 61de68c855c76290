"""The zygote: a process forked early from the runtime, before it opens a database
connection, starts a thread or an event loop, that forks one child per task attempt.

Tasks therefore start in ~1 ms with the flow module and shipyard already imported, and none
inherits a lock held by a thread that does not exist in the child. Each task leads its own
process group, so a timeout or Ctrl-C kills the task *and* whatever it started; so does the
task's end: once a task is reaped, what is left in its group is killed. No orphans:
- the runtime dies (even by SIGKILL): the zygote sees its socket close, kills every task
  group and exits;
- a process that left the task's group (``setsid``, a double fork) is still the task's
  descendant: the zygote and every task are child subreapers, so such a process is adopted
  by its task while the task lives and by the zygote after, which kills it at the task's
  end (the zygote's children that are not tasks are exactly these);
- the zygote dies too (``kill -9`` of the runtime's process group, the OOM killer): each task
  asked for :data:`ORPHANED` on its parent's death (``PR_SET_PDEATHSIG``; it follows the
  thread that forked the task, the zygote's only one), whose handler kills the task's whole
  group, itself included. A task busy in C code (not in Python, a sleep or a wait) goes when
  it returns to Python.

Protocol over a socketpair: length-prefixed pickles.
  runtime -> zygote  ("spawn", token, payload)
  zygote  -> runtime ("started", token, pid) | ("exited", token, pid, exitcode, report)

A task reports back by writing to the pipe whose fd its target is given (``report`` is
every byte written there, ``b""`` if the task died first): no file to create, rename and
remove per task, and nothing half-written is ever read, since it is read after the exit.
"""

from __future__ import annotations

import gc
import os
import pickle
import selectors
import signal
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

_HEADER = struct.Struct("!I")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PR_SET_CHILD_SUBREAPER = 36
#: what a task gets when the zygote dies (see the module docstring); a real-time signal no
#: library uses, whose default action (if a step replaced the handler) still ends the task.
#: Linux only, as prctl is (0 elsewhere, never used)
ORPHANED: int = getattr(signal, "SIGRTMAX", 0)


def _orphaned(zygote_pid: int) -> None:
    """ORPHANED's handler, set in the zygote and inherited by each task: kill the task's
    group. The zygote never asks for ORPHANED; sent to it anyway, it does nothing."""
    if os.getpid() != zygote_pid:
        os.killpg(0, signal.SIGKILL)


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, or None where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def send_message(sock: socket.socket, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=5)
    sock.sendall(_HEADER.pack(len(data)) + data)


class MessageReader:
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


def fork_server(
    serve: Callable[[socket.socket], None], close_in_child: Sequence[socket.socket] = ()
) -> tuple[int, socket.socket]:
    """Fork a helper process that runs ``serve`` on its end of a new socketpair, then exits
    (code 1 if it raised; it never returns into the caller's code). Returns its pid and the
    parent's end. ``close_in_child``: sockets of the parent the child must not hold open."""
    parent, child = socket.socketpair()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for sock in (parent, *close_in_child):
                sock.close()
            serve(child)
        except BaseException:  # noqa: BLE001 - last resort, never return into the caller
            code = 1
        finally:
            os._exit(code)
    child.close()
    return pid, parent


class Zygote:
    """Handle on the zygote process, used by the runtime."""

    def __init__(
        self, target: Callable[[Any, int], int], close_in_child: Sequence[socket.socket] = ()
    ) -> None:
        """``target(payload, report_fd)`` runs in each task process; it returns the exit
        code and may write its report to ``report_fd``. ``close_in_child``: sockets of the
        runtime the zygote and its tasks must not hold open."""
        self.pid, self.sock = fork_server(lambda sock: _serve(sock, target), close_in_child)
        self._reader = MessageReader()

    def fileno(self) -> int:
        return self.sock.fileno()

    def spawn(self, token: int, payload: Any) -> None:
        send_message(self.sock, ("spawn", token, payload))

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


def _serve(sock: socket.socket, target: Callable[[Any, int], int]) -> None:
    # Move everything imported so far out of the collector's reach: a collection in a task
    # would otherwise write to (and so copy) every page of the inherited heap.
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runtime handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    zygote_pid, prctl = os.getpid(), _prctl()
    if prctl is not None:
        signal.signal(ORPHANED, lambda *_: _orphaned(zygote_pid))
        prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    adopted = f"/proc/self/task/{zygote_pid}/children"  # the zygote's only thread
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "sock")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    reader = MessageReader()
    children: dict[int, tuple[int, int, bytearray]] = {}  # pid -> token, report fd, report

    def read_report(fd: int, report: bytearray) -> bool:
        """Read what is there; True at the end of it (EOF)."""
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return False
            if not data:
                return True
            report += data

    def kill_strays() -> None:
        """Kill the zygote's children that are not tasks: processes ended tasks left
        outside their group, adopted here, with the groups they lead."""
        try:
            fd = os.open(adopted, os.O_RDONLY)
        except OSError:  # no /proc, or a kernel without CONFIG_PROC_CHILDREN
            return
        try:
            pids = os.read(fd, 1 << 16).split()
        finally:
            os.close(fd)
        for pid in map(int, pids):
            if pid not in children:
                for kill in (os.killpg, os.kill):
                    try:
                        kill(pid, signal.SIGKILL)
                    except OSError:
                        pass

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in children:
                continue
            # the task is over: so is whatever it left in its group (its pid stays the
            # group's id, not reused, while any member lives)
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            token, fd, report = children.pop(pid)
            if prctl is not None:
                kill_strays()
            # The task wrote its whole report before exiting: what is left is in the pipe
            # (a process the task started may hold the pipe open, so do not wait for EOF).
            read_report(fd, report)
            if fd in selector.get_map():
                selector.unregister(fd)
            os.close(fd)
            code = os.waitstatus_to_exitcode(status)
            send_message(sock, ("exited", token, pid, code, bytes(report)))

    def spawn(token: int, payload: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the task
            code = 1
            try:
                os.setpgid(0, 0)
                if prctl is not None:
                    prctl(_PR_SET_PDEATHSIG, ORPHANED, 0, 0, 0)
                    if os.getppid() != zygote_pid:  # it died before the prctl took
                        return
                    prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # not inherited
                selector.close()
                sock.close()
                for fd in (wake_r, wake_w, report_r, *(c[1] for c in children.values())):
                    os.close(fd)
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                code = target(payload, report_w)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        os.close(report_w)
        os.set_blocking(report_r, False)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first, or already exited
        children[pid] = (token, report_r, bytearray())
        selector.register(report_r, selectors.EVENT_READ, pid)
        send_message(sock, ("started", token, pid))

    while True:
        for key, _ in selector.select():
            if isinstance(key.data, int):  # a task's report pipe: keep it drained
                child = children.get(key.data)
                if child is not None and read_report(child[1], child[2]):
                    selector.unregister(child[1])  # EOF: reap() closes it
                continue
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
                children.clear()  # now every child is a stray: kill and reap until none
                while True:
                    if prctl is not None:
                        kill_strays()
                    try:
                        os.waitpid(-1, 0)
                    except ChildProcessError:
                        return
            for message in reader.feed(data):
                if message[0] == "spawn":
                    spawn(message[1], message[2])
        reap()
