"""Serving logs: what a service saw (facts, lookups), computed (features) and answered
(prediction) for a sample of its requests, written off the request path.

```python
class Ranker(Service):
    features = ranker_features
    serving_log = ServingLog(sample=0.1, max_bytes=32 << 20, max_age=timedelta(minutes=5),
                             retention=timedelta(days=30), features=ranker_features)

    @endpoint
    def score(self, profile_id: str, title: str) -> float:
        facts = {...}
        vector = self.features.vector(facts, lookups)
        prediction = float(self.model.predict([vector])[0])
        self.serving_log.log(facts=facts, lookups=lookups, features=vector, prediction=prediction)
        return prediction
```

``features=`` may be a dict of name -> value (each record carries the names), or - the
cheaper form, for a log given ``ServingLog(features=<the FeatureSet>)`` (or the names) - the
vector of values the model was given: the names are written once in each segment's header
(format version 3) and the reader puts them back (a vector whose length differs from the
names is a clear error when read).

On the request path, :meth:`ServingLog.log` does a sampling draw (none at ``sample=1``), a
look at the queue's length, one ``time.time()``, one C call with positional arguments that
encodes the record (ormsgpack's ``packb`` when installed, the ``features`` extra; msgpack
otherwise: the same values, slower) and a ``collections.deque.append`` of the bytes - no
lock, no Event or Condition, no I/O, no compression, no counter, no object per record but
the bytes (the writer reads a record's time from them: :func:`record_time`). A record is
encoded when ``log`` is called, so changing the dicts afterwards changes nothing logged.
Encoding there rather than in the writer is measured, not a shortcut: queued as live
objects, records are walked by the garbage collector until the writer takes them and are
freed by it cold: on bench/features.py's paired workers that cost 4.1 us a request in all
(the writer 2.2 of it), against 2.9 us for encoding in ``log`` in the same pair of runs
(README, "Serving logs"); bytes are not tracked by the collector. (Joining records into
chunks on the request path, so the writer handles a few buffers, was measured too: it cost
the request thread more than it saved the writer.) A record that cannot be encoded (an
integer past 64 bits) is counted in ``errors`` and not logged.

A full queue (``queue_size`` records) drops the record and counts it (``dropped``): logging
never blocks, and memory stays bounded. A background thread, started on the first record,
wakes every ``flush_interval`` seconds (0.05 s: in bench/features.py's workers, 0.25 s cost
more CPU per request; it backs off to one wake a second while nothing comes: an idle wake
costs ~0.1 ms of CPU; no request wakes it), takes what is queued, joins it into one msgpack
array of records (one ``join``, no Python code per record: the pops are called from C; cut
where the open segment reaches ``max_bytes``), compresses it (zstd level
``compression_level``, default 1: ~0.2 us a record, ~20x smaller on bench/features.py's
records; level 3 cost more for little; streamed through the segment) and appends it to the
open segment, a hidden temp file. A segment is a header, then msgpack arrays of records
(each record an array in ``FIELDS``' order). It is published (fsync, then an atomic rename,
or one PUT on S3: see :mod:`shipyard.features.logstore`) when it holds ``max_bytes`` of
records (before compression) or is ``max_age`` old, when :meth:`flush` is called, and when
the process exits. Segments whose last record is older than ``retention`` are deleted when
the writer starts, then after a publish at most once a minute (a listing per publish is a
cost of its own, and a network call on S3). A record is visible to readers once its
segment is published: at most ``max_age`` + ``flush_interval`` after it was logged while
records keep coming, up to ``IDLE_WAIT`` (1 s) more for the first record after a quiet spell.

The counters - ``logged``, ``sampled_out``, ``dropped``, ``written``, ``errors``,
``segments_published`` - are read on the object (:meth:`ServingLog.stats`); the writer
adds what changed to Prometheus counters after each wake
(``shipyard_serving_log_{written,dropped,errors,segments}_total``, by service), which a
hosted worker's ``/metrics`` shows.

Values are encoded as msgpack: numbers, strings, bools, None, lists, tuples, dicts;
datetimes as msgpack timestamps (a naive one is taken as UTC); dates as ISO strings; numpy
scalars and arrays; pydantic models (dumped); sets as lists; anything else as its ``str``.

In a hosted service the worker binds the log to the service's name after ``load()``;
elsewhere (a script, a bench) pass ``service=``.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import socket
import struct
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from itertools import accumulate, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from shipyard.features.errors import FeatureDefinitionError
from shipyard.features.logstore import SegmentStore, open_segments

if TYPE_CHECKING:
    from shipyard.features.sets import FeatureSet

__all__ = ["ServingLog"]

log = logging.getLogger("shipyard.features")

#: a segment's first msgpack value (its header); then arrays of records, each an array in
#: FIELDS' order. Version 3 (now): the header may name the features (``"features"``), and a
#: record's features are then their values in that order; version 2: the same without names
#: (each record's features a map); version 1: one record per msgpack value, no arrays.
FIELDS = ("ts", "request_id", "facts", "lookups", "features", "prediction")
VERSION = 3
#: the longest an idle writer sleeps between two looks at the queue (seconds)
IDLE_WAIT = 1.0
#: retention is applied when the writer starts and after a publish, at most this often (s):
#: a listing of the service's segments per publish cost more than the publish's writes
RETAIN_EVERY = 60.0

_HOST = (socket.gethostname() or "host").replace("-", "_").replace("/", "_")[:40]

Encoder = Callable[[Any], bytes]


class _Flush:
    """A flush request: publish the open segment, then set ``done``."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class ServingLog:
    """A sampled, batched, rotated log of a service's requests (see the module doc).

    ``sample``: the share of requests logged (0 to 1); ``max_bytes``/``max_age``: when the
    open segment is published and a new one begun; ``retention``: how long segments are
    kept; ``queue_size``: records held before new ones are dropped; ``service`` and
    ``store_url``: where (default: bound by the worker; the settings' blob store);
    ``features``: the FeatureSet (or its names) whose vectors ``log(features=[...])`` is
    given - the names are written once per segment.
    """

    def __init__(
        self,
        *,
        sample: float = 1.0,
        max_bytes: int = 32 << 20,
        max_age: timedelta = timedelta(minutes=5),
        retention: timedelta = timedelta(days=30),
        queue_size: int = 100_000,
        flush_interval: float = 0.05,
        service: str | None = None,
        store_url: str | None = None,
        compression_level: int = 1,
        features: FeatureSet | Sequence[str] | None = None,
    ) -> None:
        if not isinstance(sample, int | float) or not 0.0 <= float(sample) <= 1.0:
            raise FeatureDefinitionError(f"ServingLog(sample={sample!r}): give a share 0..1")
        for label, value in (("max_age", max_age), ("retention", retention)):
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise FeatureDefinitionError(
                    f"ServingLog({label}={value!r}): give a positive datetime.timedelta"
                )
        if not isinstance(max_bytes, int) or max_bytes < 1:
            raise FeatureDefinitionError(f"ServingLog(max_bytes={max_bytes!r}): a positive int")
        if not isinstance(queue_size, int) or queue_size < 1:
            raise FeatureDefinitionError(f"ServingLog(queue_size={queue_size!r}): a positive int")
        # a FeatureSet, or the names themselves
        names: Any = getattr(features, "names", features)
        if names is not None and (
            isinstance(names, str)
            or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)
        ):
            raise FeatureDefinitionError(
                f"ServingLog(features={features!r}): give the FeatureSet whose vectors are "
                "logged, or its feature names (distinct strings, in order)"
            )
        #: the names of the values in a logged feature vector (``log(features=[...])``),
        #: written once in each segment's header
        self.feature_names: tuple[str, ...] | None = None if names is None else tuple(names)
        self._width = -1 if names is None else len(self.feature_names or ())
        self.sample = float(sample)
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.retention = retention
        self.queue_size = queue_size
        self.flush_interval = float(flush_interval)
        self.service = service
        self.store_url = store_url
        self.compression_level = compression_level
        #: sampled out, dropped (queue full), written, writer errors, segments published
        self.sampled_out = 0
        self.dropped = 0
        self.written = 0
        self.errors = 0
        self.segments_published = 0
        self._encode = encoder()
        self._pack, self._default, self._option = packer()
        self._queue: deque[bytes] = deque()  # encoded records
        self._taken = 0  # records the writer took from the queue
        self._taking = threading.Lock()  # the writer's take, against reading ``logged``
        self._flushes: deque[_Flush] = deque()
        self._draw = random.Random().random
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wake = threading.Event()  # flush and close wake the writer at once
        self._stopping = False
        self._pid = os.getpid()
        self._fork_hook = False

    def __repr__(self) -> str:
        return f"<ServingLog {self.service or '(unbound)'} sample={self.sample}>"

    def bind(self, service: str) -> None:
        """Name the service whose log this is (the worker does, after ``load()``); a name
        given to the constructor wins."""
        if self.service is None:
            self.service = service

    # --- the request path ----------------------------------------------------------------
    def log(
        self,
        *,
        facts: Any,
        features: Any,
        prediction: Any = None,
        lookups: Any = None,
        request_id: str | None = None,
    ) -> bool:
        """Queue one request's record if it is sampled; False if not logged (sampled out,
        dropped because the queue is full, or not encodable: counted in ``sampled_out`` /
        ``dropped`` / ``errors``). ``features``: a dict of name -> value, or the values in
        the order of ``ServingLog(features=...)``'s names (the vector the model was given:
        the names are written once per segment, not per record; a vector of another length,
        or one given to a log without names, is not logged: counted in ``errors``, with a
        warning that says why). The record is encoded now:
        changing the objects later changes nothing logged."""
        if self.sample < 1.0 and self._draw() >= self.sample:
            self.sampled_out += 1
            return False
        if len(self._queue) >= self.queue_size:
            self.dropped += 1
            return False
        kind = features.__class__
        if (  # a vector must fit the names (a dict, or a list that fits: two compares)
            kind is not dict
            and not (kind is list and len(features) == self._width)
            and features is not None
            and not isinstance(features, Mapping)
            and not self._fits(features)
        ):
            return False
        try:  # one C call, positional arguments (a partial's keywords cost a dict a call)
            data = self._pack(
                (time.time(), request_id, facts, lookups, features, prediction),
                self._default,
                self._option,
            )
        except Exception as exc:  # an integer past 64 bits, a dict changed meanwhile
            self.errors += 1
            log.warning("serving log of %s: a record could not be encoded: %s", self.service, exc)
            return False
        self._queue.append(data)  # the bytes alone: the writer reads ts from them
        if self._thread is None:
            self._start()
        return True

    def _fits(self, vector: Any) -> bool:
        """Whether a feature vector (values only) can be named by this log's feature names;
        if not, it is refused here, counted in ``errors`` (a segment never holds a vector
        its header cannot name, so no read of the log fails on it)."""
        try:
            width = len(vector)
        except TypeError:
            width = -2
        if width == self._width:
            return True
        self.errors += 1
        log.warning(
            "serving log of %s: a record was not logged: %s",
            self.service,
            "its features are a vector of values but the log has no feature names: give "
            "ServingLog(features=<the FeatureSet>) or log a dict of name -> value"
            if self._width < 0
            else f"its feature vector has {width} values, but the log's features are "
            f"{self._width} ({', '.join(self.feature_names or ())})",
        )
        return False

    # --- control -------------------------------------------------------------------------
    @property
    def logged(self) -> int:
        """Records accepted by :meth:`log` (queued, written, or failed to encode)."""
        with self._taking:
            return self._taken + len(self._queue)

    def stats(self) -> dict[str, int]:
        """The counters: logged, sampled_out, dropped, written, errors, segments, queued."""
        return {
            "logged": self.logged,
            "sampled_out": self.sampled_out,
            "dropped": self.dropped,
            "written": self.written,
            "errors": self.errors,
            "segments": self.segments_published,
            "queued": len(self._queue),
        }

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued and publish the open segment; True once done."""
        if self._thread is None:
            return True
        marker = _Flush()
        self._flushes.append(marker)  # handled after the records queued before it
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush and stop the writer thread (registered at exit)."""
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        self._thread = None
        self._stopping = False

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            if self.service is None:
                raise FeatureDefinitionError(
                    "ServingLog has no service name: in a hosted service the worker binds it; "
                    "elsewhere give ServingLog(service='name')"
                )
            if self._pid != os.getpid():  # a forked child: its own queue and thread
                self._queue = deque(self._queue)
                self._flushes = deque()
                self._pid = os.getpid()
                self._wake = threading.Event()
                self._stopping = False
            writer = _Writer(self, open_segments(self.store_url), self.service)
            thread = threading.Thread(target=writer.run, name="shipyard-serving-log", daemon=True)
            self._thread = thread
            thread.start()
            atexit.register(self.close)
            if not self._fork_hook:
                self._fork_hook = True
                os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """In a child forked from a process with a writer thread: none runs here yet (and
        no lock is held by a thread that is not here)."""
        self._thread = None
        self._taking = threading.Lock()
        self._start_lock = threading.Lock()


class _Writer:
    """The background thread's state: the open segment and how to publish it."""

    def __init__(self, owner: ServingLog, store: SegmentStore, service: str) -> None:
        import zstandard

        self.owner = owner
        self.store = store
        self.service = service
        self.header = owner._encode(header(owner.feature_names))
        self.zstd = zstandard.ZstdCompressor(level=owner.compression_level)
        self.seq = 0
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.compressor: Any = None
        self.opened = 0.0
        self.size = 0
        self.first = 0.0
        self.last = 0.0
        self.warned = False
        self.retained = 0.0  # when retention was last applied (monotonic)
        self.metrics = _metrics(service)
        self.reported = (0, 0, 0, 0)

    def run(self) -> None:
        owner = self.owner
        try:
            self.store.clean_spool(self.service)
            self.retain()
        except Exception as exc:  # the store is down: the writes will say so again
            self.failed("could not clean or apply retention", exc)
        wait = owner.flush_interval
        while True:
            owner._wake.wait(wait)
            owner._wake.clear()
            stopping = owner._stopping
            busy = self.drain()
            if self.file is not None and (
                self.size >= owner.max_bytes
                or time.monotonic() - self.opened >= owner.max_age.total_seconds()
            ):
                self.publish()
            if stopping:
                self.drain()
                self.publish()
            self.report()
            if stopping:
                return
            wait = self.next_wait(wait, busy)

    def next_wait(self, wait: float, busy: bool) -> float:
        """``flush_interval`` while records come; after a wake that found none, twice the
        wait before, up to ``IDLE_WAIT`` (an idle writer's wake costs ~0.1 ms of CPU: 20 a
        second would be a cost of its own), and never past the open segment's ``max_age``.
        A record after a quiet spell waits that long at most; ``flush``/``close`` wake the
        writer at once."""
        interval = self.owner.flush_interval
        if busy:
            return interval
        wait = min(max(interval, IDLE_WAIT), wait * 2)
        if self.file is not None:
            due = self.opened + self.owner.max_age.total_seconds() - time.monotonic()
            wait = min(wait, max(interval, due))
        return wait

    def drain(self) -> bool:
        """Write what is queued, then answer the flush requests made meanwhile; whether
        there were records."""
        owner = self.owner
        flushes = owner._flushes
        pending = len(flushes)  # those asked before this drain began
        queue = owner._queue
        count = len(queue)
        if count:
            with owner._taking:  # popleft called from C, ``count`` times: no frame per record
                items = list(islice(iter(queue.popleft, None), count))
                owner._taken += count
            try:
                self.write_items(items)
            except Exception as exc:
                self.failed("could not write records", exc)
                self.discard()
        if pending:
            self.publish()
            for _ in range(pending):
                flushes.popleft().done.set()
        return count > 0

    def write_items(self, items: list[bytes]) -> None:
        """Write ``items`` (encoded records) as one msgpack array of records: one join, one
        compressor call (no Python work per record beyond the writer's pop); the first and
        last records' times are read from their bytes (:func:`record_time`). A batch that
        would take the open segment past ``max_bytes`` is cut where it reaches it
        (:meth:`write_split`)."""
        data = b"".join(items)
        if self.size + len(data) < self.owner.max_bytes:
            self.write(
                _array_header(len(items)),
                data,
                len(items),
                record_time(data),
                record_time(items[-1]),
            )
        else:
            self.write_split(data, list(accumulate(map(len, items))))

    def write_split(self, data: bytes, ends: list[int]) -> None:
        """Write encoded records (``data``; record ``i`` ends at ``ends[i]``) as msgpack
        arrays of records, a new one where the open segment reaches ``max_bytes`` (the cut
        found with ``bisect``)."""
        view = memoryview(data)
        start = 0
        while start < len(ends):
            base = ends[start - 1] if start else 0
            room = self.owner.max_bytes - self.size
            stop = max(start + 1, bisect_right(ends, base + room, lo=start))
            last = ends[stop - 2] if stop - start > 1 else base
            self.write(
                _array_header(stop - start),
                view[base : ends[stop - 1]],
                stop - start,
                record_time(data, base),
                record_time(data, last),
            )
            start = stop

    def write(
        self, head: bytes, data: bytes | memoryview, count: int, first: float, last: float
    ) -> None:
        """Append one msgpack array of ``count`` records (``head``, then ``data``)."""
        if self.file is None:
            self.open(first)
        assert self.file is not None
        compress = self.compressor.compress
        self.file.write(compress(head) + compress(data))
        self.size += len(data)
        self.last = last
        self.owner.written += count
        if self.size >= self.owner.max_bytes:
            self.publish()

    def open(self, ts: float) -> None:
        self.seq += 1
        self.path = self.store.spool(self.service, f"{self.seq:06d}")
        self.file = open(self.path, "wb")  # noqa: SIM115 - closed in publish/discard
        self.compressor = self.zstd.compressobj()
        self.file.write(self.compressor.compress(self.header))
        self.opened = time.monotonic()
        self.size = 0
        self.first = ts

    def publish(self) -> None:
        if self.file is None or self.path is None:
            return
        try:
            self.file.write(self.compressor.flush())
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            name = (
                f"{int(self.first * 1000):013d}-{int(self.last * 1000):013d}-{_HOST}-"
                f"{os.getpid()}-{self.seq:06d}.msgpack.zst"
            )
            self.store.publish(self.service, self.path, name)
            self.owner.segments_published += 1
        except Exception as exc:
            self.failed("could not publish a segment", exc)
            self.discard()
            return
        self.file = None
        self.path = None
        if time.monotonic() - self.retained >= RETAIN_EVERY:
            try:
                self.retain()
            except Exception as exc:
                self.failed("could not apply retention", exc)

    def discard(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self.file = None
        self.path = None

    def retain(self) -> None:
        """Delete the service's segments whose last record is older than ``retention``."""
        self.retained = time.monotonic()
        cutoff = (time.time() - self.owner.retention.total_seconds()) * 1000
        for segment in self.store.segments(self.service):
            if segment.last_ms < cutoff:
                self.store.delete(self.service, segment.name)

    def report(self) -> None:
        """Add what the counters gained since the last wake to the Prometheus counters
        (the request path never touches them)."""
        owner = self.owner
        now = (owner.written, owner.dropped, owner.errors, owner.segments_published)
        for metric, value, before in zip(self.metrics, now, self.reported, strict=True):
            if value > before:
                metric.inc(value - before)
        self.reported = now

    def failed(self, what: str, exc: BaseException) -> None:
        self.owner.errors += 1
        if not self.warned:  # once: a full disk would otherwise log at every record
            self.warned = True
            log.warning(
                "serving log of %s: %s in %s: %s: %s (counted in .errors; logging goes on)",
                self.service,
                what,
                self.store.url,
                type(exc).__name__,
                exc,
            )


_METRICS: tuple[Any, Any, Any, Any] | None = None
_METRICS_LOCK = threading.Lock()


def _metrics(service: str) -> tuple[Any, ...]:
    """The service's Prometheus counters: written, dropped, errors, segments (in a hosted
    worker, prometheus_client's multiprocess files: the host's ``/metrics`` adds them up)."""
    global _METRICS
    with _METRICS_LOCK:
        if _METRICS is None:
            from prometheus_client import Counter

            _METRICS = (
                Counter(
                    "shipyard_serving_log_written",
                    "Records a service's serving log wrote to its segments",
                    ["service"],
                ),
                Counter(
                    "shipyard_serving_log_dropped",
                    "Records a serving log dropped because its queue was full (it never blocks)",
                    ["service"],
                ),
                Counter(
                    "shipyard_serving_log_errors",
                    "Serving log records that could not be encoded, and failed segment writes",
                    ["service"],
                ),
                Counter(
                    "shipyard_serving_log_segments",
                    "Serving log segments published",
                    ["service"],
                ),
            )
    return tuple(metric.labels(service) for metric in _METRICS)


def _array_header(count: int) -> bytes:
    """A msgpack array header of ``count`` items: the records joined after it are the array."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def header(feature_names: tuple[str, ...] | None) -> dict[str, Any]:
    """A segment's header: the format, its version, the record fields and (when the log
    was given them) the names of a logged feature vector's values."""
    found: dict[str, Any] = {
        "format": "shipyard-serving-log",
        "version": VERSION,
        "fields": list(FIELDS),
    }
    if feature_names is not None:
        found["features"] = list(feature_names)
    return found


_TIME = struct.Struct(">d")


def record_time(data: bytes, offset: int = 0) -> float:
    """The time (epoch seconds) of an encoded record: both encoders write a record as a
    msgpack array of six (``0x96``) whose first item, ``time.time()``'s float, is a
    float 64 (``0xcb``) and its 8 big-endian bytes; ``offset``: where the record begins."""
    return float(_TIME.unpack_from(data, offset + 2)[0])


Packer = Callable[[Any, Any, Any], bytes]


def packer(prefer: str = "ormsgpack") -> tuple[Packer, Any, Any]:
    """``(pack, default, option)``: ``pack(value, default, option)`` encodes like
    :func:`encoder`'s function, called with positional arguments only (the request path's
    cheapest call: ormsgpack's ``packb`` itself)."""
    if prefer == "ormsgpack":
        try:
            import ormsgpack
        except ImportError:
            pass
        else:
            return ormsgpack.packb, _plain, _ormsgpack_options()
    import msgpack

    def pack(value: Any, default: Any, option: Any) -> bytes:
        return bytes(msgpack.packb(value, default=default, datetime=True))

    return pack, _plain, None


def _ormsgpack_options() -> int:
    import ormsgpack

    return int(
        ormsgpack.OPT_NAIVE_UTC
        | ormsgpack.OPT_DATETIME_AS_TIMESTAMP_EXT
        | ormsgpack.OPT_SERIALIZE_NUMPY
        | ormsgpack.OPT_SERIALIZE_PYDANTIC
        | ormsgpack.OPT_NON_STR_KEYS
    )


def encoder(prefer: str = "ormsgpack") -> Encoder:
    """A function that encodes a record (or any value) as msgpack bytes: ormsgpack when
    installed and ``prefer`` says so (a Rust encoder, ~2x msgpack's speed on a record),
    else msgpack's. Both write the same values (see the module doc)."""
    if prefer == "ormsgpack":
        try:
            import ormsgpack
        except ImportError:
            pass
        else:
            return partial(ormsgpack.packb, default=_plain, option=_ormsgpack_options())
    import msgpack

    return partial(msgpack.packb, default=_plain, datetime=True)


def _plain(value: Any) -> Any:
    """What the encoder cannot encode as is."""
    if isinstance(value, datetime):  # naive: taken as UTC
        import msgpack

        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return msgpack.Timestamp.from_datetime(aware)
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
