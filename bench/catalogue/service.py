"""bench/catalogue.py's service part on a host of its own, run inside the loopback-only network
namespace the driver makes (the service loads the model; so does the index flow).

    python bench/catalogue/service.py SPEC.json

In a fresh ``SHIPYARD_HOME``: ``examples/catalogue_search/flow.py run [--sample N] --reuse
INDEX`` registers ``catalogue-index`` (the titles keep the vectors the quality part
embedded, so nothing is embedded twice); ``shipyard serve`` on a free 127.0.0.1 port;
``shipyard deploy examples/catalogue_search/service.py:Catalogue --name catalogue
--replicas R``; then ``shipyard loadtest catalogue/search`` at the goal's rate over the
held-out queries' bodies (query embedding included: nothing is cached), and with
``find_max`` the highest rate that keeps the p95 goal. Prints one ``BENCH_JSON`` line with the
loadtest summaries; the host is stopped at the end, however it ends.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/, for model_steps

from model_steps import (  # noqa: E402
    REPO,
    free_port,
    loadtest,
    post,
    require_netns,
    run_logged,
    start_host,
    stop,
)

EXAMPLE = REPO / "examples" / "catalogue_search"


def main() -> int:
    require_netns()
    spec = json.loads(Path(sys.argv[1]).read_text())
    work = Path(spec["workdir"])
    home = work / "service-home"
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SHIPYARD_HOME=str(home))
    log = work / "service.log"
    python = sys.executable
    flow = [python, str(EXAMPLE / "flow.py"), "run", "--reuse", spec["index"]]
    if spec["sample"]:
        flow += ["--sample", str(spec["sample"])]
    t0 = time.perf_counter()
    run_logged(flow, log, 3600, env)
    result: dict[str, Any] = {"flow_s": time.perf_counter() - t0, "replicas": spec["replicas"]}
    url = f"http://127.0.0.1:{free_port()}"
    host = start_host(url, work / "host.log", env, "--no-scheduler")
    try:
        run_logged([python, "-m", "shipyard", "deploy", f"{EXAMPLE / 'service.py'}:Catalogue",
                    "--name", "catalogue", "--replicas", str(spec["replicas"]), "--url", url],
                   log, 900, env)  # fmt: skip
        key = (home / "admin.token").read_text().strip()
        for body in spec["bodies"][:20]:  # every replica has loaded the index and the model
            post(f"{url}/catalogue/search", body, key)
        bodies = work / "search.jsonl"
        bodies.write_text("".join(json.dumps(b) + "\n" for b in spec["bodies"]))
        d = f"{spec['duration']:g}s"
        slo = f"p95<{spec['p95_ms']:g}ms"
        result["at_rate"] = loadtest(
            url, "catalogue/search", bodies, work / "lt-rate", env, "--rate",
            f"{spec['rate']:g}", "--duration", d, "--ramp", "5s", "--slo", f"{slo},errors<1%",
        )  # fmt: skip
        if spec["find_max"]:
            result["max"] = loadtest(
                url, "catalogue/search", bodies, work / "lt-max", env, "--find-max", "--rate",
                f"{spec['rate']:g}", "--duration", d, "--slo", f"{slo},errors<1%",
            )  # fmt: skip
    finally:
        stop(host)
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
