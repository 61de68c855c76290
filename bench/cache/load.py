"""Bulk-load N keys into one cache namespace through shipyard's writer; run by bench/cache.py
in a process of its own, so that its wall time and peak memory are the load's alone.

    python bench/cache/load.py URL NAMESPACE N

Key ``p0000042`` holds a list of 50 ints (``i % 50,000 .. + 49``: small item indices, 1 to 3
bytes each in msgpack). The items are generated lazily, so the loader never holds them all;
the writer batches them (``shipyard.cache.writer.BATCH``). Prints one ``BENCH_JSON`` line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator

from shipyard import cache

VALUE_LEN = 50


def items(n: int) -> Iterator[tuple[str, list[int]]]:
    """``(key, value)`` pairs: ``p{i:07d}`` -> 50 consecutive ints starting at ``i % 50,000``."""
    for i in range(n):
        start = i % 50_000
        yield f"p{i:07d}", list(range(start, start + VALUE_LEN))


def main(argv: list[str]) -> int:
    url, namespace, n = argv[0], argv[1], int(argv[2])
    t0 = time.perf_counter()
    writer = cache.writer(namespace, url=url, meta={"bench": "bulk load"})
    t1 = time.perf_counter()
    written = writer.put_many(items(n), total=n)
    t2 = time.perf_counter()
    workaround = ""
    try:
        info = writer.commit()
    except cache.CacheError as exc:
        if "_settings." not in str(exc):
            raise
        # The Redis backend refuses the reserved namespace "_settings.NS" that commit() reads
        # the namespace's settings from (redis.py's _NAME; see bench/README.md): publish with
        # the backend's own atomic publish instead, without the pruning of old versions.
        workaround = f"commit() failed ({exc}); published with backend.publish()"
        info = writer.backend.publish(namespace, writer.version)
    t3 = time.perf_counter()
    writer.backend.close()
    if written != n or info.keys != n:
        print(f"wrote {written} keys, the version holds {info.keys}, expected {n}", file=sys.stderr)
        return 1
    maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "keys": n,
        "version": info.version,
        "begin_s": t1 - t0,
        "put_s": t2 - t1,
        "commit_s": t3 - t2,
        "total_s": t3 - t0,
        "maxrss": maxrss_kb * 1024,
        "workaround": workaround,
    }
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
