"""The serve part of bench/ray.py (``--only serve``): the iris LogisticRegression service of
bench/serve.py three ways, each with one replica of one CPU, measured by ``shipyard loadtest``
(closed model) at 1 and ``--serve-connections`` (32) connections:

- shipyard on Ray: ``shipyard serve`` (the host, on this machine) with
  bench/serve/shipyard_service.py:Iris deployed ``--on ray --replica-cpus 1``: the request
  goes to the host, which validates it and sends it to the replica's worker over TCP;
- plain Ray Serve: bench/serve/ray_serve_app.py (the same model in a Ray Serve deployment)
  called through Ray Serve's own HTTP proxy;
- shipyard local: the same host with the service deployed on its own worker (``--replicas 1``).

The cluster is bench/ray.py's (two nodes of ``--node-cpus``); Serve's controller and its HTTP
proxy are started by this driver before the host connects (the host starts no proxy).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SERVE_DIR = BENCH / "serve"
BODY = '{"features": [5.1, 3.5, 1.4, 0.2]}'
TARGETS = ("shipyard-ray", "ray-serve", "shipyard-local")
DISPLAY = {
    "shipyard-ray": "shipyard on Ray (through the host)",
    "ray-serve": "plain Ray Serve (its HTTP proxy)",
    "shipyard-local": "shipyard local replica",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ok(url: str, body: str, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.post(
                url, content=body, headers={"content-type": "application/json"}, timeout=5
            )
            if response.status_code == 200 and response.text.strip() == "0":
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 0 within {timeout:.0f} s")
        time.sleep(0.2)


def loadtest(
    url: str, connections: int, duration: float, env: dict[str, str], out: Path
) -> dict[str, Any]:
    """``shipyard loadtest URL`` with ``connections`` connections; its summary.json."""
    argv = [
        sys.executable, "-m", "shipyard", "loadtest", url, "--json", BODY,
        "--concurrency", str(connections), "--duration", f"{duration:g}s",
        "--ramp", "2s", "--no-record", "--out", str(out),
    ]  # fmt: skip
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=duration + 120)
    return dict(json.loads((out / "summary.json").read_text()))


def part_serve(address: str, args: Any, workdir: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """Every target at 1 and ``args.serve_connections`` connections: target -> connections
    -> the load test's summary."""
    import ray
    from ray import serve

    results: dict[str, dict[int, dict[str, Any]]] = {}
    levels = (1, args.serve_connections)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=f"{REPO / 'src'}:{SERVE_DIR}",
        SHIPYARD_HOME=str(Path(tempfile.mkdtemp(prefix="serve-", dir=workdir)) / "home"),
        SHIPYARD_RAY_ADDRESS=address,
    )
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]  # the cluster's workers import from there
    proxy_port = _free_port()
    ray.init(address=address, namespace="bench", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": proxy_port})
    host_port = _free_port()
    host_url = f"http://127.0.0.1:{host_port}"
    host = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "serve", "--port", str(host_port)],
        env=env,
        stdout=open(workdir / "host.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )

    def shipyard(*argv: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "shipyard", *argv, "--url", host_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"shipyard {argv[0]} failed: {done.stderr[-2000:]}")

    try:
        _wait_health(host_url)
        service = f"{SERVE_DIR / 'shipyard_service.py'}:Iris"
        for target in args.serve_targets:
            progress(f"serve: {DISPLAY[target]}")
            if target == "ray-serve":
                sys.path.insert(0, str(SERVE_DIR))
                import iris_model  # noqa: PLC0415
                import ray_serve_app  # noqa: PLC0415

                from ray import cloudpickle  # noqa: PLC0415

                # the cluster's workers cannot import bench/serve: send the code itself
                cloudpickle.register_pickle_by_value(iris_model)
                cloudpickle.register_pickle_by_value(ray_serve_app)
                app = ray_serve_app.app

                serve.run(app, name="plain-iris", route_prefix="/iris")
                url = f"http://127.0.0.1:{proxy_port}/iris"
            elif target == "shipyard-ray":
                shipyard("deploy", service, "--name", "iris-ray", "--on", "ray",
                         "--replica-cpus", "1")  # fmt: skip
                url = f"{host_url}/iris-ray/predict"
            else:
                shipyard("deploy", service, "--name", "iris-local", "--replicas", "1")
                url = f"{host_url}/iris-local/predict"
            _wait_ok(url, BODY)
            for connections in levels:
                out = workdir / f"{target}-{connections}"
                summary = loadtest(url, connections, args.serve_duration, env, out)
                results.setdefault(target, {})[connections] = summary
                progress(
                    f"  {connections:>3} connections: {summary['rps']:,.0f} req/s, p50 "
                    f"{summary['latency_ms']['p50']:.2f} ms, errors {summary['errors']}"
                )
            if target == "ray-serve":
                serve.delete("plain-iris")
            else:
                shipyard("undeploy", "iris-ray" if target == "shipyard-ray" else "iris-local")
    finally:
        host.terminate()
        host.wait(30)
        ray.shutdown()
    return results


def _wait_health(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the host at {url} did not start")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def serve_report(
    results: dict[str, dict[int, dict[str, Any]]], args: Any, heading: str, command: str
) -> str:
    many = args.serve_connections
    lines = [
        "## Services on Ray: through the host vs plain Ray Serve vs the host's own replica",
        "",
        heading,
        "",
        f"The iris LogisticRegression of bench/serve.py, one replica of 1 CPU each, "
        f"`shipyard loadtest` (closed model, 2 s ramp, then {args.serve_duration:g} s "
        f"measured) at 1 and {many} connections; `{command}`. The load generator, the host "
        "and the two Ray nodes share the machine's cores.",
        "",
        "| target | connections | req/s | p50 | p99 | errors |",
        "|---|---|---|---|---|---|",
    ]
    for target in TARGETS:
        for connections, s in sorted(results.get(target, {}).items()):
            lat = s["latency_ms"]
            lines.append(
                f"| {DISPLAY[target]} | {connections} | {s['rps']:,.0f} | "
                f"{lat['p50']:.2f} ms | {lat['p99']:.2f} ms | {s['errors']} |"
            )
    lines += ["", "| goal (issue 23) | measured | met |", "|---|---|---|"]
    ours, theirs = results.get("shipyard-ray", {}), results.get("ray-serve", {})
    if 1 in ours and 1 in theirs:
        a, b = ours[1]["latency_ms"]["p50"], theirs[1]["latency_ms"]["p50"]
        lines.append(
            f"| p50 at 1 connection through the host ≤ plain Ray Serve's | {a:.2f} vs "
            f"{b:.2f} ms | {'yes' if a <= b else '**no**'} |"
        )
    if many in ours and many in theirs:
        a, b = ours[many]["rps"], theirs[many]["rps"]
        lines.append(
            f"| req/s at {many} connections through the host ≥ plain Ray Serve's | {a:,.0f} vs "
            f"{b:,.0f} | {'yes' if a >= b else '**no**'} |"
        )
    lines += [
        "",
        "How to read it: through the host, a request is parsed once by the host and sent as "
        "one frame over a TCP connection the host keeps to the replica's worker; plain Ray "
        "Serve's request goes through its proxy actor, then to the replica actor over Ray's "
        "RPC, which is most of its latency at one connection. At "
        f"{many} connections on this 2-core machine every target is CPU-bound on cores it "
        "shares with the load generator, the host and the idle Ray nodes; the host's local "
        "replica has no Ray node beside it. Numbers from a shared machine with a high load "
        "average vary run to run; the ratios held in every run so far.",
    ]
    return "\n".join(lines) + "\n"
