"""The framing between the host's front process and a service's worker processes.

One Unix stream socket per worker, multiplexed by request id. Every frame is a fixed
13-byte header followed by ``length`` payload bytes:

    length u32 | request_id u32 | kind u8 | code u16 | extra u16

=========  =====================  ==========================================================
kind       direction              code / extra / payload
=========  =====================  ==========================================================
REQUEST    front -> worker        endpoint index / 0, or 1 when CHUNKs of the body follow /
                                  the HTTP body (or its first part), raw JSON bytes
CHUNK      front -> worker        0 / 1 when more follow, 0 for the last / the next part of a
                                  REQUEST's body (frames of other requests may come between)
ABORT      front -> worker        0 / 0 / empty: drop the partial body of a streamed REQUEST
                                  (too large, or its client left); it gets no RESPONSE
RESPONSE   worker -> front        HTTP status / batch size it ran in (0 if none), or
                                  OVERRAN on the 504 of a pooled call that overran its
                                  timeout (the worker is to be retired) / JSON bytes
READY      worker -> front        0 / 0 / JSON: {"service", "pid", "endpoints": [{"name",
                                  "batch", "timeout", "async", "concurrency"}],
                                  "openapi": {...}, "models": {...}, "warnings": [...]}
PING       front -> worker        0 / 0 / empty         (request_id echoed in PONG; the
                                  host's health pings use request id 0)
PONG       worker -> front        0 / 0 / empty
REFUSED    worker -> front        0 / 0 / empty: the worker did not run this request (it is
                                  retiring or stopping); the front may send it elsewhere
=========  =====================  ==========================================================

The worker sends READY once, first, on every new connection, after ``load()`` succeeded. The
front never parses request bodies: validation happens in the worker, where the validators
were built once at load. A body the front has whole goes in one REQUEST; a larger one is
streamed as it arrives (REQUEST with extra=1, then CHUNKs), and the worker runs the request
at its last CHUNK.

A second socket, the *model channel*, carries model records, so that a worker never needs the
metadata database (see ``model_channel.py``). The host passes the worker one end of a socket
pair (``--models-fd``); the same framing runs on it:

=========  =====================  ==========================================================
kind       direction              code / extra / payload
=========  =====================  ==========================================================
PINNED     host -> worker         0 / 0 / JSON: {spec: record} of the deployment's pins; sent
                                  once, first
RESOLVE    worker -> host         0 / 0 / the model spec, UTF-8 (``ranker@prod``)
MODEL      host -> worker         200, 404, 422 or 500 / 0 / JSON: the record, or
                                  {"error": message}   (request_id echoed from RESOLVE)
=========  =====================  ==========================================================

A third one, the *control channel* (``--control-fd``, a socket pair too), is read by a thread
of the worker, so it is answered even while a sync endpoint holds the event loop:

=========  =====================  ==========================================================
kind       direction              code / extra / payload
=========  =====================  ==========================================================
RETIRE     host -> worker         0 / 0 / empty: stop taking requests, finish those started,
                                  exit
RETIRED    worker -> host         request_id = the last request the worker took (0: none);
                                  every request sent after it will not run (see worker.py)
LISTENING  worker -> host         0 / 0 / JSON {"port": N}: a worker started with ``--listen``
                                  (a replica on Ray) took TCP port N, after load() succeeded
STATS      host -> worker         0 / 0 / empty; the worker answers STATS with
                                  code = the requests it is running (at most 65535)
=========  =====================  ==========================================================

A worker started with ``--listen HOST`` (a replica on Ray, ``ray_replica.py``) serves the same
framing on a TCP port instead of a Unix socket; every connection first sends the 32-byte
token the worker got in ``SHIPYARD_WORKER_TOKEN``, or is closed without an answer.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import struct
from dataclasses import dataclass

from shipyard.serve.errors import ServeError

HEADER = struct.Struct("!IIBHH")
MAX_FRAME = 64 << 20  # a frame larger than this is a protocol error, not a request
#: RESPONSE extra of the 504 a worker sends for a call of a ``concurrency=N`` endpoint that
#: overran its timeout: the thread cannot be stopped, so the host retires the worker (such an
#: endpoint is never a batch one, so the batch size never takes this value there)
OVERRAN = 0xFFFF


class Kind(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2
    READY = 3
    PING = 4
    PONG = 5
    PINNED = 6
    RESOLVE = 7
    MODEL = 8
    CHUNK = 9
    ABORT = 10
    REFUSED = 11
    RETIRE = 12
    RETIRED = 13
    LISTENING = 14
    STATS = 15


@dataclass(frozen=True)
class Frame:
    kind: Kind
    request_id: int
    code: int = 0
    extra: int = 0
    payload: bytes = b""


class ProtocolError(ServeError):
    """The peer sent something that is not a frame."""


def encode(frame: Frame) -> bytes:
    return (
        HEADER.pack(len(frame.payload), frame.request_id, frame.kind, frame.code, frame.extra)
        + frame.payload
    )


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """The next frame. Raises ``asyncio.IncompleteReadError`` at EOF."""
    length, request_id, kind, code, extra = _header(await reader.readexactly(HEADER.size))
    payload = await reader.readexactly(length) if length else b""
    return Frame(kind, request_id, code, extra, payload)


def recv_frame(sock: socket.socket) -> Frame:
    """The next frame from a blocking socket. Raises ``EOFError`` when the peer closed it."""
    length, request_id, kind, code, extra = _header(_recv_exactly(sock, HEADER.size))
    payload = _recv_exactly(sock, length) if length else b""
    return Frame(kind, request_id, code, extra, payload)


def _header(header: bytes) -> tuple[int, int, Kind, int, int]:
    length, request_id, kind, code, extra = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    try:
        frame_kind = Kind(kind)
    except ValueError:
        raise ProtocolError(f"unknown frame kind {kind}") from None
    return length, request_id, frame_kind, code, extra


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the peer closed the connection")
        chunks += chunk
    return bytes(chunks)
