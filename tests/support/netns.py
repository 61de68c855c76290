"""Running a command, or a pytest of its own, inside a loopback-only network namespace
(``unshare -n``, then ``ip link set lo up``): whatever starts Ray or loads a model there cannot
reach anything but 127.0.0.1, so a hidden download (or Ray's probe of the cloud metadata
address) fails at once instead of hanging or leaving the machine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: what the code under test must set up itself (offline flags), or must not reach (a database
#: or store outside the namespace)
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
OUTSIDE_STORES = ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL")


def run_in_netns(
    command: str,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the shell ``command`` from the repository's root in a new loopback-only network
    namespace, with this process's environment plus ``env``, minus ``drop``."""
    environ = {**os.environ, **(env or {})}
    for name in drop:
        environ.pop(name, None)
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {command}"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def pytest_in_netns(
    target: str,
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
) -> subprocess.CompletedProcess[str]:
    """A pytest of its own over ``target`` (a path relative to the root) in the namespace;
    fails the caller unless it exited 0 having passed something and skipped nothing."""
    out = run_in_netns(
        f"{sys.executable} -m pytest -q -p no:cacheprovider -p no:randomly {target}",
        timeout=timeout,
        env=env,
        drop=drop,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert " passed" in out.stdout, out.stdout[-3000:]
    assert "failed" not in out.stdout and "skipped" not in out.stdout, out.stdout[-3000:]
    return out
