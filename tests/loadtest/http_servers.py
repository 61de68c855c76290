"""A tiny HTTP/1.1 server for the load client's tests, on its own event loop in a thread:
it counts what it answers, and can stall on a schedule, answer chunked, close after each
answer, or answer some paths with an error status."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Behaviour:
    #: stall every answer for the first ``stall`` seconds of every ``period`` seconds
    stall: float = 0.0
    period: float = 0.0
    chunked: bool = False
    close: bool = False  # Connection: close after each answer
    statuses: dict[str, int] = field(default_factory=dict)  # path -> status
    hang: frozenset[str] = frozenset()  # paths never answered


class TinyServer:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.answered = 0
        self.by_path: Counter[str] = Counter()
        self.bodies: Counter[bytes] = Counter()
        self.authorizations: Counter[str] = Counter()
        self.port = 0
        self.started = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self.started = time.monotonic()
        self._ready.set()
        loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        b = self.behaviour
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                    if name.strip().lower() == "authorization":
                        self.authorizations[value.strip()] += 1
                body = await reader.readexactly(length) if length else b""
                if b.period:
                    into = (time.monotonic() - self.started) % b.period
                    if into < b.stall:
                        await asyncio.sleep(b.stall - into)
                if path in b.hang:
                    await asyncio.sleep(3600)
                status = b.statuses.get(path, 200)
                self.answered += 1
                self.by_path[path] += 1
                self.bodies[body] += 1
                payload = b'{"ok":true}'
                headers = f"HTTP/1.1 {status} X\r\n"
                if b.close:
                    headers += "Connection: close\r\n"
                if b.chunked:
                    headers += "Transfer-Encoding: chunked\r\n\r\n"
                    data = headers.encode() + b"5\r\n" + payload[:5] + b"\r\n"
                    data += f"{len(payload) - 5:x}\r\n".encode() + payload[5:] + b"\r\n0\r\n\r\n"
                else:
                    headers += f"Content-Length: {len(payload)}\r\n\r\n"
                    data = headers.encode() + payload
                writer.write(data)
                if b.close:
                    await writer.drain()
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> TinyServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        def close() -> None:
            server.close()
            loop.stop()

        loop.call_soon_threadsafe(close)
        self._thread.join(10)


@contextmanager
def tiny_server(behaviour: Behaviour | None = None) -> Iterator[TinyServer]:
    server = TinyServer(behaviour).start()
    try:
        yield server
    finally:
        server.stop()
