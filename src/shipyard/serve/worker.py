"""One worker process of a hosted service, started by the host's supervisor:

    python -m shipyard.serve.worker --socket PATH --code-dir DIR --entry FILE.py:Class \\
        --name SERVICE [--pins '{"ranker@prod": "ranker:7"}'] [--models-fd N] [--isolate PLAN]
        [--host-pid PID --host-id ID] [--control-fd N] [--listen HOST]

With ``--host-pid`` it dies with that host (``parent.py``): the kernel kills it when the host
exits, it exits at once (status 4) if the host has already gone, and it drains and exits when
the host's connection closes. ``--host-id`` only marks it as that host's (``hostfile.py``).

Before any of the service's code is imported it isolates itself when the host asked
(``--isolate``: see ``isolation.py``; it exits 3 if it cannot), and takes its model records
from the host over the model channel ``--models-fd`` (see ``model_channel.py``), so it never
opens the metadata database. Then it imports FILE from DIR under its own module name
(``service`` for ``service.py``, never ``__main__``), reads the class, builds every
validator, calls ``load()``, freezes the loaded objects out of the garbage collector's reach
(``gc.freeze()``: no full collection walks the model again), and serves the framing of
``protocol.py`` on the Unix socket PATH (mode 0600): READY first on every connection, then
REQUEST -> RESPONSE (many in flight, any order; a body streamed in CHUNKs runs at its last
one, and an ABORT drops it) and PING -> PONG. Sync endpoints run inline on the event loop
(uvloop when installed); async ones are tasks; ``concurrency=N`` ones run in their pool of N
threads (``dispatch.py``), which the worker times itself.

With ``--listen HOST`` (a replica on Ray: ``ray_replica.py``) it serves on a TCP port of
HOST instead of the Unix socket, sends LISTENING with the port on the control channel once
it is ready, and takes only connections that first send the token of its
``SHIPYARD_WORKER_TOKEN`` (removed from its environment before any service code runs). Its
control thread also answers STATS (the requests it is running: Ray's autoscaler reads them).

Retiring (``--control-fd``): the host retires a worker whose call overran (a sync call cannot
be stopped) by sending RETIRE on the control channel. A thread reads it, so it is answered
even while a sync call holds the event loop (as long as that call lets the GIL go, as
sleeping, I/O and Python code do). The thread sets ``retiring``, then reads ``current`` (the
last request the read loop took) and answers RETIRED(current), then stops the worker
(draining). The read loop, for each request, sets ``current`` first and then looks at
``retiring``: a request whose look came after the flag is answered REFUSED and never runs.
Under the GIL these are Dekker's two flags: a request runs only if its look came before the
flag was set, and then ``current`` was already it or later, so RETIRED covers it; every
request after the one RETIRED names is one the worker will not run, and the host sends it to
another replica. A worker stopping on SIGTERM refuses new requests the same way.

A pooled call (``concurrency=N``) taken before the flag may still wait for a free thread.
When a thread takes it, it first records when it began (the worker times it from then),
then looks at ``retiring`` and ``stopping``: if either is set it does not run, and is
answered REFUSED. Once stopping, the pools are closed, and the calls still queued in them
are answered REFUSED at once (a queued call cancelled never begins). A call is answered
REFUSED only if none of its code ran, so the host's resend never runs a call twice, and
every call the worker took gets an answer, RESPONSE or REFUSED. Calls running finish
(within the drain limit). A pooled call that overruns is answered 504 ``OVERRAN`` by the
worker; the host retires the worker like any other, which exits without waiting for that
call's thread.

Exit status: 0 after SIGTERM/SIGINT (stop accepting, finish in-flight requests for at most
30 s); 3 when the code could not be imported, the class is not a valid service, or
``load()`` raised - with one JSON line ``{"event": "load_failed", ...}`` on stderr; 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hmac
import importlib
import json
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.serve.dispatch import NOT_RUN, EndpointTable, Reply, log_event
from shipyard.serve.protocol import Frame, Kind, ProtocolError, encode, read_frame, recv_frame
from shipyard.serve.service import Service, ServiceDefinitionError

#: the environment variable that carries a ``--listen`` worker's connection token
TOKEN_ENV = "SHIPYARD_WORKER_TOKEN"
TOKEN_BYTES = 32

__all__ = ["LOAD_FAILED", "PINS_ENV", "Worker", "import_service", "main"]

LOAD_FAILED = 3
PINS_ENV = "SHIPYARD_MODEL_PINS"
DRAIN_SECONDS = 30.0
_HIGH_WATER = 1 << 20  # bytes buffered for the front before the worker waits for it
_TRIM_BODY = 4 << 20  # a streamed body this large is followed by a malloc_trim
_TRIM_DELAY = 1.0  # seconds after it (one trim for all the bodies of that second)


def import_service(code_dir: Path, entry: str) -> type[Service]:
    """Import ``FILE.py:Class`` from ``code_dir`` under the file's own module name."""
    file, sep, class_name = entry.rpartition(":")
    if not sep or not file.endswith(".py") or not class_name.isidentifier():
        raise ServiceDefinitionError(f"--entry {entry!r} must look like service.py:ClassName")
    path = (code_dir / file).resolve()
    if not path.is_file():
        raise ServiceDefinitionError(f"{path} does not exist (--entry {entry!r})")
    module_name = ".".join(Path(file[: -len(".py")]).parts)
    existing = sys.modules.get(module_name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "") != path:
        raise ServiceDefinitionError(
            f"{file} would be imported as module {module_name!r}, which is already the "
            f"installed module {getattr(existing, '__file__', module_name)}; rename the file"
        )
    sys.path.insert(0, str(code_dir.resolve()))
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        found = sorted(
            name
            for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, Service) and value is not Service
        )
        what = "is not a Service subclass" if cls is not None else "is not defined there"
        raise ServiceDefinitionError(
            f"{class_name} {what} in {path}; Service classes there: {', '.join(found) or 'none'}"
        )
    return cls


class _Connection:
    """One connection from the front: writes replies, counts requests in flight."""

    def __init__(self, worker: Worker, writer: asyncio.StreamWriter) -> None:
        self.worker = worker
        self.writer = writer
        self.transport = writer.transport
        self.closed = False

    def reply(self, request_id: int, reply: Reply) -> None:
        self.worker.in_flight -= 1
        if reply is NOT_RUN:  # a pooled call that never ran (retiring or stopping)
            if not self.closed:
                self.writer.write(encode(Frame(Kind.REFUSED, request_id)))
        elif not self.closed:
            size = reply.batch_size if reply.batch_size < 0xFFFF else 0xFFFF
            frame = Frame(Kind.RESPONSE, request_id, reply.status, size, reply.body)
            self.writer.write(encode(frame))
        if self.worker.in_flight == 0 and self.worker.stopping:
            self.worker.drained.set()

    def replier(self, request_id: int) -> Callable[[Reply], None]:
        return lambda reply: self.reply(request_id, reply)


class Worker:
    """Serves one loaded ``EndpointTable`` on a Unix socket until SIGTERM."""

    def __init__(
        self,
        table: EndpointTable,
        socket_path: Path,
        models: dict[str, str],
        control: socket.socket | None = None,
        *,
        listen: str | None = None,
        token: bytes = b"",
    ) -> None:
        self.table = table
        self.socket_path = socket_path
        #: serve on a TCP port of this host instead of the Unix socket (a replica on Ray)
        self.listen = listen
        self.token = token
        self.ready = encode(
            Frame(Kind.READY, 0, payload=json.dumps(table.ready_info(os.getpid(), models)).encode())
        )
        self.in_flight = 0
        self.stopping = False
        self.drained = asyncio.Event()
        self._connections: set[_Connection] = set()
        #: set by SIGTERM/SIGINT, or when the host's connection closes (:meth:`follow_host`)
        self.stop = asyncio.Event()
        self._stop_with_front = False
        self._trim_timer: asyncio.TimerHandle | None = None
        #: the host's control channel (RETIRE), read by a thread of its own
        self.control = control
        #: the id of the last request the read loop took, and whether RETIRE came (set by
        #: the control thread): see the module's docstring for why this order is enough
        self.current = 0
        self.retiring = False
        for runtime in table.endpoints:  # asked by a pooled call in its thread as it begins
            runtime.may_begin = self._may_begin

    def _may_begin(self) -> bool:
        return not (self.retiring or self.stopping)

    def follow_host(self) -> None:
        """Stop (draining) when the host's connection closes: the host keeps one for the
        worker's whole life, so once it is gone nobody can reach this worker again."""
        self._stop_with_front = True

    def _front_left(self) -> None:
        if self._stop_with_front and not self.stopping:
            log_event("host_gone", service=self.table.service)
            self.stop.set()

    async def serve(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        loop = asyncio.get_running_loop()
        stop = self.stop
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server: asyncio.AbstractServer
        if self.listen is not None:
            server = await asyncio.start_server(
                self._handle_tcp, host=self.listen, port=0, limit=1 << 20
            )
            port = server.sockets[0].getsockname()[1]
            if self.control is not None:
                payload = json.dumps({"port": port}).encode()
                self.control.sendall(encode(Frame(Kind.LISTENING, 0, payload=payload)))
        else:
            previous = os.umask(0o177)  # the socket file is created 0600, never wider
            try:
                server = await asyncio.start_unix_server(
                    self._handle, path=str(self.socket_path), limit=1 << 20
                )
            finally:
                os.umask(previous)
            os.chmod(self.socket_path, 0o600)
        if self.control is not None:
            threading.Thread(
                target=self._control_loop, args=(self.control, loop), daemon=True
            ).start()
        await stop.wait()
        self.stopping = True
        server.close()
        self.table.close()  # pooled calls not begun: REFUSED; running ones are waited for
        if self.listen is None:
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
        if self.in_flight > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), drain_seconds)
        for connection in list(self._connections):
            connection.closed = True
            connection.writer.close()
        log_event("stopped", service=self.table.service, unfinished=self.in_flight)

    def _trim_later(self) -> None:
        """Give the memory of large freed bodies back to the system a second from now (glibc
        keeps it otherwise), once for all the bodies of that second."""
        if self._trim_timer is None:

            def trim() -> None:
                self._trim_timer = None
                _trim()

            self._trim_timer = asyncio.get_running_loop().call_later(_TRIM_DELAY, trim)

    def _control_loop(self, control: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        """The control thread: answers RETIRE even while a sync call holds the loop."""
        try:
            while True:
                frame = recv_frame(control)
                if frame.kind is Kind.STATS:
                    control.sendall(encode(Frame(Kind.STATS, 0, min(self.in_flight, 0xFFFF))))
                    continue
                if frame.kind is not Kind.RETIRE or self.retiring:
                    continue
                self.retiring = True  # first the flag, then the read of current
                upto = self.current
                control.sendall(encode(Frame(Kind.RETIRED, upto)))
                log_event("retiring", service=self.table.service, upto=upto)
                loop.call_soon_threadsafe(self.stop.set)
        except (EOFError, OSError, ProtocolError, RuntimeError):
            return  # the host closed the channel, or the loop is closed: nothing to do

    async def _handle_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A TCP connection (``--listen``): served only after it sent the token."""
        try:
            sent = await asyncio.wait_for(reader.readexactly(len(self.token)), 10.0)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if not self.token or not hmac.compare_digest(sent, self.token):
            log_event("connection_refused", service=self.table.service, reason="bad token")
            writer.close()
            return
        await self._handle(reader, writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(self, writer)
        self._connections.add(connection)
        writer.write(self.ready)
        submit = self.table.submit
        #: the bodies streamed in parts, until their last CHUNK: request id -> (endpoint, parts)
        partial: dict[int, tuple[int, list[bytes]]] = {}
        try:
            while True:
                frame = await read_frame(reader)
                if frame.kind is Kind.REQUEST:
                    self.current = frame.request_id  # first current, then the look at retiring
                    if self.retiring or self.stopping:  # not run: the host sends it elsewhere
                        writer.write(encode(Frame(Kind.REFUSED, frame.request_id)))
                    elif frame.extra:  # the body follows in CHUNKs
                        partial[frame.request_id] = (frame.code, [frame.payload])
                    else:
                        self.in_flight += 1
                        submit(frame.code, frame.payload, connection.replier(frame.request_id))
                elif frame.kind is Kind.CHUNK:
                    streamed = partial.get(frame.request_id)
                    if streamed is None:
                        continue  # refused at its start: the rest is dropped
                    streamed[1].append(frame.payload)
                    if not frame.extra:
                        del partial[frame.request_id]
                        if self.stopping:  # taken, but its body ended after the stop
                            writer.write(encode(Frame(Kind.REFUSED, frame.request_id)))
                            continue
                        body = b"".join(streamed[1])
                        streamed[1].clear()
                        self.in_flight += 1
                        submit(streamed[0], body, connection.replier(frame.request_id))
                        if len(body) >= _TRIM_BODY:
                            self._trim_later()
                        del body
                elif frame.kind is Kind.ABORT:
                    partial.pop(frame.request_id, None)  # no answer: the front forgot it
                elif frame.kind is Kind.PING:
                    writer.write(encode(Frame(Kind.PONG, frame.request_id)))
                else:
                    raise ProtocolError(f"unexpected {frame.kind.name} frame from the front")
                if connection.transport.get_write_buffer_size() > _HIGH_WATER:
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the front closed the connection
        except ProtocolError as exc:
            log_event("protocol_error", service=self.table.service, error=str(exc))
        finally:
            connection.closed = True
            self._connections.discard(connection)
            writer.close()
            self._front_left()


def _trim() -> None:
    from shipyard.serve._linux import malloc_trim

    malloc_trim()


def _load_failed(exc: BaseException) -> int:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    error = (
        str(exc)
        if isinstance(exc, ServiceDefinitionError)
        else (f"{type(exc).__name__}: {exc}{where}")
    )
    log_event("load_failed", error=error, traceback="".join(traceback.format_exception(exc)))
    return LOAD_FAILED


def _parse_pins(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    pins = json.loads(text)
    if not isinstance(pins, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in pins.items()
    ):
        raise ValueError(
            '--pins must be a JSON object of strings, e.g. \'{"ranker@prod": "ranker:7"}\''
        )
    return pins


def _run(coroutine: Any) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep working without
        asyncio.run(coroutine)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shipyard.serve.worker",
        description=(
            "Serve one service's endpoints on a Unix socket (started by the host's supervisor)."
        ),
    )
    parser.add_argument("--socket", required=True, type=Path, help="Unix socket path to create")
    parser.add_argument("--code-dir", required=True, type=Path, help="directory of the code")
    parser.add_argument("--entry", required=True, help="FILE.py:Class inside --code-dir")
    parser.add_argument("--name", required=True, help="the service name")
    parser.add_argument("--pins", default=None, help="JSON: model spec -> 'name:version'")
    parser.add_argument("--models-fd", type=int, default=None, help="the model channel's fd")
    parser.add_argument("--isolate", default=None, help="JSON: the view to isolate into")
    parser.add_argument("--host-pid", type=int, default=None, help="die with this process")
    parser.add_argument("--host-id", default=None, help="the id of the host that started it")
    parser.add_argument("--control-fd", type=int, default=None, help="the control channel's fd")
    parser.add_argument(
        "--listen", default=None, help="serve on a TCP port of this address (a replica on Ray)"
    )
    args = parser.parse_args(argv)
    # the token of --listen: read before any service code runs, and out of its reach
    token = os.environ.pop(TOKEN_ENV, "").encode()
    if args.listen is not None and len(token) != TOKEN_BYTES:
        parser.error(f"--listen needs a {TOKEN_BYTES}-character {TOKEN_ENV}")
    _die_with_host(args.host_pid)  # before anything slow: the host may die at any time
    if args.control_fd is not None:  # the host's, not for processes the service may start
        os.set_inheritable(args.control_fd, False)
    try:
        pins = _parse_pins(args.pins)
    except ValueError as exc:
        parser.error(f"--pins: {exc}")
    if pins:
        os.environ[PINS_ENV] = json.dumps(pins, sort_keys=True)
    try:
        _start(args.isolate, args.models_fd)
    except (OSError, EOFError, ValueError, ProtocolError) as exc:
        return _load_failed(ServiceDefinitionError(f"the worker could not start: {exc}"))
    _die_with_host(args.host_pid)  # isolation changed this process's capabilities
    try:
        service_class = import_service(args.code_dir, args.entry)
        table = EndpointTable.load(service_class, args.name)
    except (Exception, SystemExit) as exc:
        return _load_failed(exc)
    # everything loaded so far lives as long as the worker: keep it out of every collection
    gc.collect()
    gc.freeze()
    _die_with_host(args.host_pid)  # load() may have changed the user id, which clears it
    log_event("ready", service=args.name, pid=os.getpid(), frozen_objects=gc.get_freeze_count())
    control = socket.socket(fileno=args.control_fd) if args.control_fd is not None else None
    worker = Worker(
        table,
        args.socket,
        {**pins, **_resolved_models()},
        control,
        listen=args.listen,
        token=token,
    )
    if args.host_pid is not None and args.listen is None:  # a Ray replica's host may come back
        worker.follow_host()
    _run(worker.serve())
    if table.running():  # a pooled call still running (one that overran): do not wait for
        # its thread, which the interpreter would join at exit; the worker is done
        log_event("exit_with_running_calls", service=args.name, running=table.running())
        sys.stdout.flush()
        os._exit(0)
    return 0


def _die_with_host(host_pid: int | None) -> None:
    """With ``--host-pid``: die with the host, or exit now if it has gone (``parent.py``)."""
    if host_pid is not None:
        from shipyard.serve.parent import die_with_host

        die_with_host(host_pid)


def _start(isolate: str | None, models_fd: int | None) -> None:
    """What happens before any service code runs: isolation, then the model channel."""
    if isolate is not None:
        from shipyard.serve.isolation import Plan, apply

        apply(Plan.from_json(isolate))
    if models_fd is not None:
        from shipyard.serve.model_channel import HostResolver, install

        install(HostResolver(socket.socket(fileno=models_fd)))


def _resolved_models() -> dict[str, str]:
    """The model specs load() resolved (only if it used the registry at all)."""
    registry_model = sys.modules.get("shipyard.registry.model")
    return dict(getattr(registry_model, "resolved", {}))


if __name__ == "__main__":
    sys.exit(main())
