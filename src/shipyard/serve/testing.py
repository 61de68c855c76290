"""Test a service without a host: in process, or against a real worker process.

```python
from shipyard.serve.testing import ServiceClient

def test_home() -> None:
    with ServiceClient(Ranker) as client:
        status, body = client.post("home", {"profile_id": "p1"})
        assert status == 200 and len(body) == 10
```

``ServiceClient`` calls ``load()`` and sends requests through the worker's own dispatch code
(validation, batching, contracts, error bodies). ``WorkerProcess`` starts
``python -m shipyard.serve.worker`` on a temporary socket and talks frames to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from shipyard.serve.dispatch import EndpointTable, Reply, default_service_name
from shipyard.serve.errors import ServeError
from shipyard.serve.protocol import HEADER, Frame, Kind, ProtocolError, encode
from shipyard.serve.service import Service

__all__ = ["FrameConnection", "ServiceClient", "WorkerExited", "WorkerProcess"]

Body = Mapping[str, Any] | bytes | str | None


class ServiceClient:
    """An in-process client of a ``Service`` class: ``post(endpoint, body) -> (status, json)``."""

    def __init__(self, service: type[Service], *, name: str | None = None) -> None:
        self.name = name or default_service_name(service)
        self.table = EndpointTable.load(service, self.name)
        self._loop = asyncio.new_event_loop()

    @property
    def instance(self) -> Service:
        """The loaded service object (what ``load()`` set up)."""
        return self.table.instance

    def post(self, endpoint: str, body: Body = None) -> tuple[int, Any]:
        """Send one request; the status and the decoded JSON body."""
        reply = self.call(endpoint, body)
        return reply.status, json.loads(reply.body)

    def call(self, endpoint: str, body: Body = None) -> Reply:
        """Send one request; the raw ``Reply`` (status, body bytes, batch size)."""
        return self.call_many(endpoint, [body])[0]

    def post_many(self, endpoint: str, bodies: Sequence[Body]) -> list[tuple[int, Any]]:
        """Send requests that arrive together (a batch endpoint joins them)."""
        return [(r.status, json.loads(r.body)) for r in self.call_many(endpoint, bodies)]

    def call_many(self, endpoint: str, bodies: Sequence[Body]) -> list[Reply]:
        """Like ``post_many``, returning raw ``Reply`` objects."""
        return self._loop.run_until_complete(self._submit_all(endpoint, bodies))

    def openapi(self) -> dict[str, Any]:
        """The service's OpenAPI 3.1 document."""
        return self.table.openapi

    def close(self) -> None:
        self._loop.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def _submit_all(self, endpoint: str, bodies: Sequence[Body]) -> list[Reply]:
        runtime = self.table.by_name.get(endpoint)
        if runtime is None:
            known = ", ".join(self.table.by_name)
            raise KeyError(f"{self.name} has no endpoint {endpoint!r}; it has: {known}")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Reply]] = []
        for body in bodies:
            future: asyncio.Future[Reply] = loop.create_future()
            futures.append(future)
            self.table.submit(runtime.index, _encode_body(body), future.set_result)
        return list(await asyncio.gather(*futures))


def _encode_body(body: Body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class WorkerExited(ServeError):
    """The worker process exited before it was ready."""

    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(f"the worker exited with status {returncode}: {stderr[-2000:]}")
        self.returncode = returncode
        self.stderr = stderr


class FrameConnection:
    """A blocking connection to a worker socket, speaking protocol.py frames."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self._buffer = bytearray()
        first = self.recv()
        if first.kind is not Kind.READY:
            raise ProtocolError(f"expected READY first, got {first.kind.name}")
        self.ready: dict[str, Any] = json.loads(first.payload)
        self.indexes = {e["name"]: i for i, e in enumerate(self.ready["endpoints"])}
        self._next_id = 1

    def send(self, frame: Frame) -> None:
        self.sock.sendall(encode(frame))

    def send_request(self, endpoint: str, body: Body = None) -> int:
        """Send a REQUEST without waiting; returns its request id."""
        request_id = self._next_id
        self._next_id += 1
        self.send(Frame(Kind.REQUEST, request_id, self.indexes[endpoint], 0, _encode_body(body)))
        return request_id

    def request(self, endpoint: str, body: Body = None) -> tuple[int, Any]:
        """One request and its response (nothing else may be in flight)."""
        request_id = self.send_request(endpoint, body)
        frame = self.recv()
        if frame.request_id != request_id:
            raise ProtocolError(f"expected a response to {request_id}, got {frame.request_id}")
        return frame.code, json.loads(frame.payload)

    def recv(self) -> Frame:
        while True:
            if len(self._buffer) >= HEADER.size:
                length, request_id, kind, code, extra = HEADER.unpack_from(self._buffer)
                end = HEADER.size + length
                if len(self._buffer) >= end:
                    payload = bytes(self._buffer[HEADER.size : end])
                    del self._buffer[:end]
                    return Frame(Kind(kind), request_id, code, extra, payload)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the worker closed the connection")
            self._buffer += chunk

    def close(self) -> None:
        self.sock.close()


class WorkerProcess:
    """``python -m shipyard.serve.worker`` on a temporary socket, for tests.

    ```python
    with WorkerProcess(tmp_path, "service.py:Echo", "echo") as worker:
        conn = worker.connect()
        assert conn.request("echo", {"text": "hi"}) == (200, {"text": "hi"})
    ```
    """

    def __init__(
        self,
        code_dir: Path,
        entry: str,
        name: str,
        *,
        pins: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 30.0,
        control: bool = False,
    ) -> None:
        self.code_dir = Path(code_dir)
        self._socket_dir = tempfile.TemporaryDirectory(prefix="shipyard-w-")
        os.chmod(self._socket_dir.name, 0o700)
        self.socket_path = Path(self._socket_dir.name) / "w.sock"
        self._stderr = tempfile.TemporaryFile()
        argv = [
            sys.executable,
            "-m",
            "shipyard.serve.worker",
            "--socket",
            str(self.socket_path),
            "--code-dir",
            str(self.code_dir),
            "--entry",
            entry,
            "--name",
            name,
        ]
        if pins:
            argv += ["--pins", json.dumps(dict(pins))]
        #: with ``control=True``: the host's end of the control channel (RETIRE, RETIRED)
        self.control: socket.socket | None = None
        worker_end = None
        if control:
            self.control, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            argv += ["--control-fd", str(worker_end.fileno())]
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                env={**os.environ, **(env or {})},
                pass_fds=(worker_end.fileno(),) if worker_end is not None else (),
            )
        finally:
            if worker_end is not None:
                worker_end.close()
        self._ready_timeout = ready_timeout
        self._connections: list[FrameConnection] = []

    def wait_ready(self) -> FrameConnection:
        """Wait until the socket accepts a connection; raises ``WorkerExited``."""
        deadline = time.monotonic() + self._ready_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise WorkerExited(code, self.stderr())
            if self.socket_path.exists():
                try:
                    connection = FrameConnection(self.socket_path)
                except (ConnectionRefusedError, FileNotFoundError):
                    pass
                else:
                    self._connections.append(connection)
                    return connection
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"the worker was not ready in {self._ready_timeout}s")
            time.sleep(0.01)

    def connect(self) -> FrameConnection:
        """A new connection (READY already read); waits for the worker to be ready."""
        return self.wait_ready()

    def stderr(self) -> str:
        """Everything the worker wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def events(self) -> list[dict[str, Any]]:
        """The structured JSON lines of stderr."""
        out = []
        for line in self.stderr().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def terminate(self, timeout: float = 35.0) -> int:
        """SIGTERM, then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        for connection in self._connections:
            connection.close()
        if self.control is not None:
            self.control.close()
        self.kill()
        self._stderr.close()
        self._socket_dir.cleanup()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
