"""A tiny HTTP/1.1 server that stalls: for the first STALL seconds of every PERIOD seconds
every answer waits until the stall is over (a GC pause, a lock, a disk hiccup).

    python bench/loadtest/stall_server.py PORT [STALL PERIOD]      # default 1.0 5.0
"""

from __future__ import annotations

import asyncio
import sys
import time

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def main(port: int, stall: float, period: float) -> None:
    started = time.monotonic()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                into = (time.monotonic() - started) % period
                if into < stall:
                    await asyncio.sleep(stall - into)
                writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    stall, period = (float(sys.argv[2]), float(sys.argv[3])) if len(sys.argv) > 3 else (1.0, 5.0)
    asyncio.run(main(int(sys.argv[1]), stall, period))
