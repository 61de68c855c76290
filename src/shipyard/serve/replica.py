"""One worker process of a service, as the front sees it: the process, its socket, and the
requests in flight on it.

The front talks to each replica over one multiplexed Unix-socket connection (see
protocol.py). A replica is *ready* once the worker sent READY; it is picked by the number of
requests in flight plus those admitted to it that are still on their way (``pending``); when
its process dies every request in flight on it fails at once with :class:`ReplicaGone`, and
nothing else is affected. A body the front does not have whole is streamed to it
(:meth:`Replica.open`, :meth:`Replica.send_chunk`, :meth:`Replica.abort`).

A replica the host *retires* (a call overran; see ``Supervisor.retire``) is told so on its
control channel (RETIRE); its answer RETIRED names the last request it took: every request
sent after it, and every one it answers REFUSED, fails with :class:`NotStarted`, which the
front may send to another replica, since the worker never ran it (when the front still has
its body: a streamed one is answered 503 instead).

The supervisor pings each ready replica (:meth:`Replica.ping`); ``ping_sent`` is the time of
the ping not answered yet, if any, and ``unresponsive`` says it has waited too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.serve.errors import ServeError
from shipyard.serve.protocol import Frame, Kind, ProtocolError, encode, read_frame
from shipyard.serve.secrets import SecretError, resolve_secrets

if TYPE_CHECKING:
    from shipyard.serve.isolation import Plan
    from shipyard.serve.memory import Guard
    from shipyard.serve.model_channel import ModelSource


#: bytes waiting for a worker beyond which a streamed body waits too (backpressure)
HIGH_WATER = 1 << 20


class ReplicaGone(ServeError):
    """The replica's process exited (or its connection broke) with the request in flight."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotStarted(ServeError):
    """The worker did not run the request and never will (it is retiring or stopping): the
    request can be sent to another replica."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LoadFailed(ServeError):
    """The worker exited before it was ready; ``reason`` is what it said."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class WorkerSpec:
    """How to start one worker process of a deployment version."""

    service: str
    entry: str  # "service.py:Class"
    code_dir: Path
    env: dict[str, str]
    pins: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    secrets: dict[str, str] = field(default_factory=dict)  # name -> reference (secrets.py)
    #: where the worker's model records come from (None: it reads the registry itself)
    models: ModelSource | None = None
    #: the view the worker isolates itself into before running any service code (None: none)
    isolation: Plan | None = None
    #: the host's pid and id: the worker dies with that process (parent.py), and a later
    #: host of the same home knows the worker for its predecessor's (hostfile.py)
    host_pid: int | None = None
    host_id: str | None = None


class Replica:
    """A running worker process and the connection to it."""

    def __init__(self, spec: WorkerSpec, socket_path: Path, number: int) -> None:
        self.spec = spec
        self.socket_path = socket_path
        self.number = number
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ready_info: dict[str, Any] = {}
        self.in_flight: dict[int, asyncio.Future[Frame]] = {}
        #: requests picked for this replica and not sent yet (their body is on its way): the
        #: invoker takes each down again when it sent the request or gave up on it
        self.pending = 0
        self.next_id = 1
        self.ready = False
        self.stopping = False
        #: the host retired it (a call overran): it takes no new request, and its end is
        #: neither a crash nor a reason to restart it (a replacement is started at once)
        self.retiring = False
        #: set when the worker answered RETIRE (every request it will not run is failed)
        self.retired = asyncio.Event()
        #: the last request the retiring worker took, from its RETIRED (0: none)
        self.retired_upto: int | None = None
        self.exit_reason: str | None = None
        #: why its connection is over, once it is (no answer will come)
        self.gone: str | None = None
        self.served = 0
        #: loop time of the health ping not answered yet (None: none outstanding)
        self.ping_sent: float | None = None
        #: its health ping has gone unanswered too long: picked only when all are
        self.unresponsive = False
        #: time.monotonic() of the last frame from the worker: its event loop ran then, so no
        #: sync call was holding it (a call queued behind others has not overrun, a replica
        #: that answers calls is busy, not hung)
        self.heard = 0.0
        self._reader_task: asyncio.Task[None] | None = None
        self._models_task: asyncio.Task[None] | None = None
        self._control_task: asyncio.Task[None] | None = None
        self._control: socket.socket | None = None
        self._control_writer: asyncio.StreamWriter | None = None
        #: ids of the sync calls sent (answered ones are pruned in bulk: see send)
        self._sync: set[int] = set()
        #: called with the worker's pid as soon as it is started (the host's record)
        self.on_spawn: Callable[[int], None] | None = None
        #: the replica's memory limit (memory.py): its cgroup, or the poller of its RSS
        self.memory: Guard | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    # -- life cycle -----------------------------------------------------------------------
    async def start(self, ready_timeout: float = 300.0) -> None:
        """Start the process and wait for READY. Raises :class:`LoadFailed`."""
        await self._spawn()
        try:
            await asyncio.wait_for(self._connect(), ready_timeout)
        except (
            TimeoutError,
            LoadFailed,
            OSError,
            ProtocolError,
            asyncio.IncompleteReadError,
        ) as exc:
            reason = self._failure_reason(exc)
            await self.kill()
            raise LoadFailed(reason) from None

    async def _spawn(self) -> None:
        """Start the worker process: everything a worker gets from the host is decided here
        (its arguments, environment, model channel and isolation plan)."""
        spec = self.spec
        argv = [
            sys.executable,
            "-m",
            "shipyard.serve.worker",
            "--socket",
            str(self.socket_path),
            "--code-dir",
            str(spec.code_dir),
            "--entry",
            spec.entry,
            "--name",
            spec.service,
        ]
        if spec.pins:
            argv += ["--pins", json.dumps(spec.pins)]
        try:  # the values exist only in the new process's environment
            env = {**spec.env, **resolve_secrets(spec.secrets)}
        except SecretError as exc:
            raise LoadFailed(str(exc)) from None
        if spec.isolation is not None:
            argv += ["--isolate", spec.isolation.to_json()]
        if spec.host_pid is not None:
            argv += ["--host-pid", str(spec.host_pid)]
        if spec.host_id is not None:
            argv += ["--host-id", spec.host_id]
        host_end = worker_end = None
        if spec.models is not None:
            # the worker's end is passed as an fd: it is its only way to the host's registry
            host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            argv += ["--models-fd", str(worker_end.fileno())]
        # the control channel (RETIRE), read by a thread of the worker
        control, control_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv += ["--control-fd", str(control_end.fileno())]
        passed = (control_end.fileno(),) + ((worker_end.fileno(),) if worker_end else ())
        log = open(spec.log_path, "ab") if spec.log_path else None  # noqa: SIM115
        try:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log or asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT if log else asyncio.subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=passed,
            )
        except BaseException:
            if host_end is not None:
                host_end.close()
            control.close()
            raise
        finally:
            if log is not None:
                log.close()
            if worker_end is not None:
                worker_end.close()
            control_end.close()
        self._control = control
        if self.on_spawn is not None:
            self.on_spawn(self.process.pid)
        if self.memory is not None:  # before load() allocates (and before it drops privileges)
            self.memory.attach(self.process.pid)
        if host_end is not None and spec.models is not None:
            from shipyard.serve.model_channel import serve_models

            self._models_task = asyncio.create_task(serve_models(host_end, spec.pins, spec.models))

    async def _connect(self) -> None:
        assert self.process is not None
        while True:
            if self.process.returncode is not None:
                raise LoadFailed("exited")
            try:
                self.reader, self.writer = await asyncio.open_unix_connection(
                    str(self.socket_path), limit=64 << 20
                )
                break
            except (FileNotFoundError, ConnectionRefusedError):
                await asyncio.sleep(0.02)
        await self._await_ready()
        if self._control is not None:
            self._control_task = asyncio.create_task(self._control_loop(self._control))

    async def _await_ready(self) -> None:
        """Read the worker's first frame, READY (its info), on the connection just made, and
        start reading answers: ready for calls."""
        assert self.reader is not None
        first = await read_frame(self.reader)
        if first.kind is not Kind.READY:
            raise ProtocolError(f"expected READY, got {first.kind.name}")
        self.ready_info = json.loads(first.payload)
        self.heard = time.monotonic()
        self.ready = True
        self._reader_task = asyncio.create_task(self._read_loop())

    def _failure_reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return "the worker did not become ready in time (is load() stuck?)"
        if self.memory is not None and self.memory.oom_killed():
            from shipyard.serve.memory import exceeded

            return exceeded(self.memory.limit) + " before it was ready"
        return exit_before_ready(
            self.spec.log_path, self.process.returncode if self.process else None
        )

    async def _read_loop(self) -> None:
        assert self.reader is not None
        try:
            while True:
                frame = await read_frame(self.reader)
                self.heard = time.monotonic()
                if frame.kind is Kind.PONG and frame.request_id == 0:  # the health ping
                    self.ping_sent = None
                    self.unresponsive = False
                    continue
                future = self.in_flight.pop(frame.request_id, None)
                if future is not None and not future.done():
                    if frame.kind is Kind.REFUSED:
                        future.set_exception(NotStarted("the worker refused it (stopping)"))
                    else:
                        future.set_result(frame)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError, OSError):
            pass
        if self.exit_reason is None:
            await self._why_closed()
        self._gone(self.exit_reason or "the worker closed its connection")

    async def _why_closed(self) -> None:
        """The connection broke: set ``exit_reason`` to why the process went, if it did."""
        if self.process is not None:
            with contextlib.suppress(TimeoutError):
                code = await asyncio.wait_for(self.process.wait(), 2.0)
                self.exit_reason = self._describe_exit(code)

    async def _control_loop(self, control: socket.socket) -> None:
        """Read the control channel: RETIRED(upto) fails every request sent after ``upto``
        with :class:`NotStarted`."""
        try:
            reader, writer = await asyncio.open_unix_connection(sock=control)
        except OSError:
            return
        self._control_writer = writer
        try:
            while True:
                frame = await read_frame(reader)
                if frame.kind is Kind.RETIRED:
                    self._not_started_after(frame.request_id)
                    self.retired.set()
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError, OSError):
            pass
        finally:
            writer.close()

    def _not_started_after(self, upto: int) -> None:
        """Fail the requests sent after ``upto`` (ids wrap at 2**32; 0: none was taken)."""
        later = [request_id for request_id in self.in_flight if _after(request_id, upto)]
        self.retired_upto = upto
        for request_id in later:
            future = self.in_flight.pop(request_id)
            if not future.done():
                future.set_exception(NotStarted("the worker is retiring"))

    def retire(self) -> None:
        """Tell the worker to take no new request, finish those it started and exit; its
        answer fails the others with :class:`NotStarted`."""
        self.retiring = True
        self.ready = False
        writer = self._control_writer
        if writer is not None and not writer.is_closing():
            writer.write(encode(Frame(Kind.RETIRE, 0)))

    def ping(self, now: float) -> None:
        """Send a health ping (request id 0) unless one is still unanswered."""
        if self.ping_sent is None and self.writer is not None and not self.writer.is_closing():
            self.ping_sent = now
            self.writer.write(encode(Frame(Kind.PING, 0)))

    def _gone(self, reason: str) -> None:
        self.ready = False
        self.gone = reason
        failed, self.in_flight = self.in_flight, {}
        for future in failed.values():
            if not future.done():
                future.set_exception(ReplicaGone(reason))

    # -- requests -------------------------------------------------------------------------
    def send(self, endpoint_index: int, body: bytes, sync: bool = False) -> asyncio.Future[Frame]:
        """Send one request; the future resolves to the RESPONSE frame. ``sync``: the
        endpoint runs inline on the worker's loop (see :meth:`sync_ahead`)."""
        return self._request(endpoint_index, body, sync, more=False)[1]

    def open(
        self, endpoint_index: int, first: bytes, sync: bool = False
    ) -> tuple[int, asyncio.Future[Frame]]:
        """Send the first part of a request whose body follows in :meth:`send_chunk` calls:
        its id, and the future of its RESPONSE frame."""
        return self._request(endpoint_index, first, sync, more=True)

    def _request(
        self, endpoint_index: int, body: bytes, sync: bool, *, more: bool
    ) -> tuple[int, asyncio.Future[Frame]]:
        if self.writer is None or self.writer.is_closing():
            raise ReplicaGone(self.exit_reason or "the worker connection is closed")
        request_id = self.next_id
        self.next_id = (request_id + 1) & 0xFFFFFFFF or 1
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.in_flight[request_id] = future
        if sync:
            calls = self._sync
            calls.add(request_id)
            if len(calls) > 256 and len(calls) > 2 * len(self.in_flight):
                calls.intersection_update(self.in_flight)  # the answered ones, in bulk
        frame = Frame(Kind.REQUEST, request_id, endpoint_index, 1 if more else 0, body)
        self.writer.write(encode(frame))
        self.served += 1
        return request_id, future

    async def send_chunk(self, request_id: int, chunk: bytes, last: bool) -> None:
        """Send the next part of request ``request_id``'s body; wait while more than
        :data:`HIGH_WATER` bytes wait for the worker (the caller stops reading its client
        meanwhile). Raises :class:`ReplicaGone` when the connection is closed."""
        writer = self.writer
        if writer is None or writer.is_closing():
            raise ReplicaGone(self.exit_reason or "the worker connection is closed")
        writer.write(encode(Frame(Kind.CHUNK, request_id, 0, 0 if last else 1, chunk)))
        if writer.transport.get_write_buffer_size() > HIGH_WATER:
            try:
                await writer.drain()
            except OSError as exc:  # ConnectionResetError: the worker went under it
                reason = self.exit_reason or f"the worker connection broke: {exc}"
                raise ReplicaGone(reason) from None

    def abort(self, request_id: int) -> None:
        """Give up on a streamed request before its last part: the worker drops what it has
        of the body, and sends no answer."""
        if self.in_flight.pop(request_id, None) is None:
            return  # answered already, or failed with the replica
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(encode(Frame(Kind.ABORT, request_id)))

    def forget(self, future: asyncio.Future[Frame]) -> int | None:
        """Drop a request the caller gave up on (timeout, client gone); its id, if it was
        still in flight."""
        request_id = self.request_id(future)
        if request_id is not None:
            del self.in_flight[request_id]
        return request_id

    def request_id(self, future: asyncio.Future[Frame]) -> int | None:
        """The id of the request in flight that ``future`` waits for, if any."""
        for request_id, pending in self.in_flight.items():
            if pending is future:
                return request_id
        return None

    def wait_again(self, request_id: int) -> asyncio.Future[Frame]:
        """A new future for request ``request_id`` in flight, whose first one was given up
        (its timer fired) but not the request: the worker's answer resolves this one."""
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        if self.gone is not None:
            future.set_exception(ReplicaGone(self.gone))
        else:
            self.in_flight[request_id] = future  # the same key: its place in send order stays
        return future

    def sync_ahead(self, request_id: int) -> bool:
        """Whether a sync call sent before ``request_id`` is still in flight: the worker
        runs sync calls one at a time, in order, on its loop, so the oldest one holds the
        loop (or waits its turn), and its own timer tells whether it overran."""
        calls = self._sync
        for other in self.in_flight:
            if other == request_id:
                return False
            if other in calls:
                return True
        return False

    async def started(self, request_id: int, wait: float) -> bool | None:
        """Whether the retiring worker took request ``request_id``: waits up to ``wait``
        seconds for its RETIRED; None if it did not answer."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.retired.wait(), wait)
        upto = self.retired_upto
        if upto is None:
            return None
        return not _after(request_id, upto)

    # -- stopping -------------------------------------------------------------------------
    async def drain_and_stop(self, grace: float = 30.0) -> None:
        """Stop taking requests, let those in flight finish (and those picked for it still
        sending their body), then stop the process."""
        self.stopping = True
        self.ready = False
        deadline = asyncio.get_running_loop().time() + grace
        while (self.in_flight or self.pending) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        await self.terminate()

    async def terminate(self, grace: float = 10.0) -> None:
        self.stopping = True
        self.ready = False
        if self.process is None or self.process.returncode is not None:
            self._close()
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            await self.kill()
        self._close()

    async def kill(self) -> None:
        self.stopping = True
        self.ready = False
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._models_task is not None:
            self._models_task.cancel()
        if self._control_task is not None:
            self._control_task.cancel()
        elif self._control is not None:
            self._control.close()
        self._gone(self.exit_reason or "the worker was stopped")
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self.memory is not None and self.process is not None:
            if self.process.returncode is not None:
                self.memory.release()

    def _describe_exit(self, code: int) -> str:
        """Why the worker exited; a worker killed over its memory limit says so."""
        if self.memory is not None and code < 0 and self.memory.oom_killed():
            from shipyard.serve.memory import exceeded

            return exceeded(self.memory.limit)
        return _describe_exit(code)

    async def wait_exit(self) -> int:
        if self.process is None:  # start() refused before spawning (a secret it cannot read)
            self._gone(self.exit_reason or "the worker never started")
            return -1
        code = await self.process.wait()
        if self.exit_reason is None:
            self.exit_reason = self._describe_exit(code)
        self._gone(self.exit_reason)
        if self.memory is not None:
            self.memory.release()
        return code


def _after(request_id: int, upto: int) -> bool:
    """Whether ``request_id`` was sent after ``upto`` (ids count up from 1 and wrap at 2**32,
    skipping 0; ``upto`` 0: the worker took none)."""
    return upto == 0 or 0 < (request_id - upto) & 0xFFFFFFFF < 0x80000000


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if name == "SIGKILL":
            return "the worker was killed (SIGKILL: out of memory, or kill -9)"
        return f"the worker crashed ({name})"
    return f"the worker exited with status {code}"


def exit_before_ready(log_path: Path | None, code: int | None) -> str:
    """Why a worker stopped before it was ready, from the end of its log: ``load()``'s
    error when it logged one, else its exit status and last lines."""
    lines = _tail_lines(log_path)
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "load_failed":
            return f"load() failed: {event.get('error')}"
    tail = " | ".join(lines[-5:])
    return f"the worker exited (status {code}) before it was ready" + (f": {tail}" if tail else "")


def _tail_lines(path: Path | None, limit: int = 64 << 10) -> list[str]:
    if path is None:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read()
    except FileNotFoundError:
        return []
    return [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
