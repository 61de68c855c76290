"""scripts/services.sh waits for each server it starts for up to SERVICES_WAIT seconds (120
by default: a first start right after an install can be slow) and says what it waits for."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "scripts" / "services.sh"


def bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` after sourcing services.sh (nothing is started by sourcing it)."""
    return subprocess.run(
        ["bash", "-c", f"source {SCRIPT}\n{script}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def test_each_server_gets_120_seconds_by_default() -> None:
    assert bash('echo "$SERVICES_WAIT"').stdout == "120\n"
    assert bash('echo "$SERVICES_WAIT"', SERVICES_WAIT="300").stdout == "300\n"
    pg_line = next(line for line in SCRIPT.read_text().splitlines() if 'pg_ctl"' in line)
    assert '-t "$SERVICES_WAIT"' in pg_line


def test_waiting_says_what_it_waits_for_and_polls_until_ready(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    result = bash(
        f'(sleep 0.5; touch {ready}) & _wait_for "redis-server on 127.0.0.1:1234" "" '
        f"test -e {ready} && echo ready"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "services: waiting for redis-server on 127.0.0.1:1234 (up to 120 s)\n"
    assert result.stdout == "ready\n"


def test_waiting_gives_up_at_the_deadline() -> None:
    started = time.monotonic()
    result = bash(
        '_wait_for "a server that never answers" "" false || echo gave up', SERVICES_WAIT="1"
    )
    assert result.stdout == "gave up\n"
    assert "(up to 1 s)" in result.stderr
    assert time.monotonic() - started >= 1  # it did wait (a lower bound: no flake when slow)


def test_waiting_stops_early_when_the_server_process_exits() -> None:
    started = time.monotonic()
    result = bash('false & pid=$!; wait $pid; _wait_for "x" "$pid" false || echo gave up')
    assert result.stdout == "gave up\n"
    assert time.monotonic() - started < 60  # not the 120 s deadline
