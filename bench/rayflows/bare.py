"""Bare Ray: the foreach's trivial function as N Ray tasks, submitted at once, gathered.

    python bench/rayflows/bare.py ADDRESS N [IN_FLIGHT]

Connects to the cluster at ADDRESS (never starts one), runs ``square`` (the body of
bench/flows/foreach.py's ``square`` step) as N tasks of 1 CPU each, checks the results and
prints one JSON line: seconds for ``ray.init`` and for the N tasks, and the nodes they ran on.
All N are submitted at once, or with IN_FLIGHT at most that many at a time (a new one as each
ends, as a runtime with ``--max-workers IN_FLIGHT`` does).
"""

import json
import sys
import time

import ray


def square(x: int) -> tuple[int, str]:
    return x * x, ray.get_runtime_context().get_node_id()


def main() -> None:
    address, n = sys.argv[1], int(sys.argv[2])
    t0 = time.perf_counter()
    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    t1 = time.perf_counter()
    remote = ray.remote(num_cpus=1, max_retries=0)(square)
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    if not window:
        results = ray.get([remote.remote(i) for i in range(n)])
    else:
        refs = {remote.remote(i): i for i in range(min(window, n))}
        got: dict[int, tuple[int, str]] = {}
        submitted = len(refs)
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                got[refs.pop(ref)] = ray.get(ref)
                if submitted < n:
                    refs[remote.remote(submitted)] = submitted
                    submitted += 1
        results = [got[i] for i in range(n)]
    t2 = time.perf_counter()
    if [value for value, _ in results] != [i * i for i in range(n)]:
        raise SystemExit("bare Ray: wrong results")
    nodes = sorted({node for _, node in results})
    ray.shutdown()
    print(json.dumps({"init": t1 - t0, "tasks": t2 - t1, "nodes": len(nodes)}))


if __name__ == "__main__":
    main()
