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

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "catalogue_search"


def run(argv: list[str], log: Path, timeout: float, env: dict[str, str]) -> None:
    with open(log, "ab") as out:
        done = subprocess.run(
            argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=REPO
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{tail}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(url: str, host: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.poll() is not None:
            raise SystemExit(f"the host exited:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return
        time.sleep(0.2)
    raise SystemExit(f"the host did not come up in {timeout:g} s")


def post(url: str, body: object, key: str) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def loadtest(url: str, bodies: Path, out: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "shipyard", "loadtest", "catalogue/search", "--url", url,
        "--bodies", str(bodies), "--out", str(out), "--no-record", *extra,
    ]  # fmt: skip
    subprocess.run(argv, env=env, cwd=REPO, capture_output=True, timeout=1800)
    summary = out / "summary.json"
    if not summary.exists():
        raise SystemExit(f"shipyard loadtest catalogue/search {' '.join(extra)} wrote no summary")
    return dict(json.loads(summary.read_text()))


def main() -> int:
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
    run(flow, log, 3600, env)
    result: dict[str, Any] = {"flow_s": time.perf_counter() - t0, "replicas": spec["replicas"]}
    url = f"http://127.0.0.1:{free_port()}"
    with open(work / "host.log", "ab") as host_log:
        host = subprocess.Popen(
            [python, "-m", "shipyard", "serve", "--port", url.rsplit(":", 1)[1], "--no-scheduler"],
            stdout=host_log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )  # fmt: skip (in the driver's session: whatever is left, the driver ends)
    try:
        healthy(url, host, work / "host.log", 120)
        run([python, "-m", "shipyard", "deploy", f"{EXAMPLE / 'service.py'}:Catalogue",
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
            url, bodies, work / "lt-rate", env, "--rate", f"{spec['rate']:g}", "--duration", d,
            "--ramp", "5s", "--slo", f"{slo},errors<1%",
        )  # fmt: skip
        if spec["find_max"]:
            result["max"] = loadtest(
                url, bodies, work / "lt-max", env, "--find-max", "--rate",
                f"{spec['rate']:g}", "--duration", d, "--slo", f"{slo},errors<1%",
            )  # fmt: skip
    finally:
        host.send_signal(signal.SIGTERM)
        try:
            host.wait(30)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait(10)
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
