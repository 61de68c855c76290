"""What the demos share: printing steps, running ``shipyard``, POSTing JSON, and a host on a
free loopback port that is always stopped at the end (``make demo`` leaves nothing running),
with the demo's service deployed on it.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHIPYARD = [sys.executable, "-m", "shipyard"]


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def shipyard(*args: str) -> None:
    print("$ shipyard " + " ".join(args), flush=True)
    subprocess.run([*SHIPYARD, *args], check=True)


def post(url: str, body: object) -> object:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def post_refused(url: str, raw: bytes) -> str:
    """POST a body the endpoint must refuse; its status and error body (a demo that shows
    bad input getting a clear error stops if it was accepted)."""
    request = urllib.request.Request(url, data=raw, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raise SystemExit(f"{url} accepted {raw!r} ({response.status}): expected a 4xx")
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read().decode()}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_host(home: Path, what: str) -> Iterator[str]:
    """``shipyard serve`` on a free port, logging to ``home/host.log``; yields its URL once
    it is healthy, and stops it when the block ends, however it ends."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    step(f"serve: a host on {url}, {what}")
    log_path = home / "host.log"
    with open(log_path, "wb") as log:
        host = subprocess.Popen(
            [*SHIPYARD, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_healthy(url, host, log_path)
            yield url
        finally:
            host.send_signal(signal.SIGTERM)
            host.wait(30)


@contextmanager
def deployed(home: Path, what: str, target: str, name: str, *options: str) -> Iterator[str]:
    """A host (:func:`running_host`) with ``target`` (``FILE.py:Class``) deployed on it as
    ``name``: ``shipyard deploy TARGET --name NAME OPTIONS... --url URL``, printed as it runs.
    Yields the host's URL for the demo's calls; the host stops when the block ends.

        with deployed(home, "the model as a service", f"{HERE / 'service.py'}:Digits",
                      "digits", "--replicas", "2") as url:
            post(f"{url}/digits/predict", {"pixels": pixels})
    """
    with running_host(home, what) as url:
        shipyard("deploy", target, "--name", name, *options, "--url", url)
        yield url


def _wait_healthy(url: str, host: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if host.poll() is not None:
            raise SystemExit(f"the host exited:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the host did not come up:\n{log.read_text()[-3000:]}")
