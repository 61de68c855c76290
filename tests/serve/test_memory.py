"""The pieces of ``--memory`` (serve/memory.py): the size parser, how the host finds its way to
enforce a limit, and the RSS poller (the fallback where no memory cgroup can be made), run with
the cgroup path turned off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.serve.memory import (
    Enforcement,
    Guard,
    SizeError,
    detect,
    exceeded,
    format_size,
    group_rss,
    parse_size,
)
from shipyard.serve.supervisor import Supervisor, VersionSpec


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512M", 512 << 20),
        ("512m", 512 << 20),
        ("512MB", 512 << 20),
        ("512MiB", 512 << 20),
        ("2G", 2 << 30),
        ("1.5G", 3 << 29),
        ("65536K", 64 << 20),
        (str(256 << 20), 256 << 20),
        (" 1T ", 1 << 40),
    ],
)
def test_sizes_parse_in_powers_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "512X", "-1G", "1G2", "M"])
def test_a_size_that_does_not_parse_is_refused_naming_it(text: str) -> None:
    with pytest.raises(SizeError, match="is not a size: use e.g. 512M"):
        parse_size(text)


def test_a_size_too_small_for_a_worker_is_refused() -> None:
    with pytest.raises(SizeError, match="below the minimum of 32 MB"):
        parse_size("1M")


def test_sizes_are_said_as_people_say_them() -> None:
    assert format_size(512 << 20) == "512 MB"
    assert format_size(3 << 29) == "1.5 GB"
    assert exceeded(128 << 20) == ("the worker exceeded its memory limit of 128 MB and was killed")


def test_the_host_says_which_enforcement_it_has(tmp_path: Path) -> None:
    off = detect("a" * 32, cgroups=False)
    assert off.kind == "rss-poll" and off.parent is None
    assert "polling each worker's RSS every 1 s" in off.message()
    assert detect("a" * 32, root=tmp_path).kind == "rss-poll"  # no controller there
    v1 = tmp_path / "memory"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text("0")
    found = detect("0123456789abcdef", root=tmp_path)
    assert found == Enforcement("cgroup-v1", v1 / "shipyard-0123456789ab")
    assert "cgroup-v1 memory cgroups under" in found.message()
    assert not found.parent or not found.parent.exists()  # made only when a replica needs it


def test_cgroup2_without_the_memory_controller_delegated_falls_back_to_polling(
    tmp_path: Path,
) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids")
    (tmp_path / "cgroup.subtree_control").write_text("cpu pids")
    found = detect("0123456789abcdef", root=tmp_path)
    assert found.kind == "rss-poll" and "memory is not delegated" in found.message()
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids")
    found = detect("0123456789abcdef", root=tmp_path)
    assert found == Enforcement("cgroup-v2", tmp_path / "shipyard-0123456789ab")


HOG = """
import sys, time
block = bytearray(200 << 20)  # zero-filled: every page is touched
print("ate", flush=True)
time.sleep(60)
"""


def test_the_poller_kills_a_process_group_over_its_limit() -> None:
    async def run() -> tuple[int, bool]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOG, start_new_session=True, stdout=subprocess.PIPE
        )
        guard = Guard(detect("x" * 32, cgroups=False), "replica-1", 64 << 20)
        guard.attach(proc.pid)
        code = await asyncio.wait_for(proc.wait(), 30)
        guard.release()
        return code, guard.oom_killed()

    code, killed = asyncio.run(run())
    assert code == -9 and killed


def test_the_poller_leaves_a_process_under_its_limit_alone() -> None:
    async def run() -> tuple[int, bool]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; sys.stdin.read()",
            start_new_session=True,
            stdin=subprocess.PIPE,
        )
        guard = Guard(detect("x" * 32, cgroups=False), "replica-1", 256 << 20)
        guard.attach(proc.pid)
        # the poller has looked at it (its RSS is read) and let it be; then it exits
        rss = group_rss(proc.pid)
        assert rss is not None and 0 < rss < 256 << 20
        assert proc.stdin is not None
        proc.stdin.close()
        code = await asyncio.wait_for(proc.wait(), 30)
        guard.release()
        return code, guard.oom_killed()

    assert asyncio.run(run()) == (0, False)


HOARDER = """
from shipyard.serve import Service, endpoint


class Hoarder(Service):
    def load(self) -> None:
        self.kept: list[bytearray] = []

    @endpoint
    def hoard(self, mb: int) -> int:
        self.kept.append(bytearray(mb << 20))  # a leak: kept after the call
        return len(self.kept)
"""


def test_a_supervisor_without_cgroups_polls_kills_and_restarts_a_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.config import settings

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    code = tmp_path / "code"
    code.mkdir()
    (code / "hoarder_service.py").write_text(HOARDER)
    conf = settings()

    async def run() -> tuple[list[tuple[str, str]], str, int]:
        supervisor = Supervisor(home, conf.store_url, config=conf, memory_cgroups=False)
        assert supervisor.memory.kind == "rss-poll"
        said: list[tuple[str, str]] = []
        supervisor.on_memory_kill.append(lambda s, r: said.append((s, r)))
        spec = VersionSpec("hoarder", 1, "hoarder_service.py:Hoarder", code, 1, memory=96 << 20)
        try:
            group = await supervisor.deploy(spec)
            first = group.replicas[0]
            index = group.endpoints["hoard"][0]
            assert first.memory is not None
            await first.send(index, b'{"mb": 160}')  # answered: the poller acts within 1 s
            await asyncio.wait_for(first.wait_exit(), 30)
            reason = first.exit_reason or ""
            deadline = asyncio.get_running_loop().time() + 60
            while not (group.replicas[0] is not first and group.replicas[0].ready):
                assert asyncio.get_running_loop().time() < deadline, "no restart"
                await asyncio.sleep(0.05)
            return said, reason, supervisor.restarts["hoarder"]
        finally:
            await supervisor.close()

    said, reason, restarts = asyncio.run(run())
    assert reason == "the worker exceeded its memory limit of 96 MB and was killed"
    assert said == [("hoarder", reason)]
    assert restarts == 1
