"""Metaflow's tutorials 00-04, ported by changing only their import lines, give Metaflow's
results (05 onward need a cloud).

The tutorials are not copied into this repository: the test reads them from the installed
``metaflow`` package (a dev dependency, which ships them with their ``movies.csv``), writes
each with ``from metaflow import`` replaced by ``from shipyard import`` into a temporary
directory, and runs it as the tutorial's README says (``python playlist.py run``), in a
temporary home, with every outbound network connection refused (a ``sitecustomize`` on the
runs' path refuses anything but loopback and Unix sockets, and notes each attempt).
The expected results are computed here from the CSV, independently of the flows.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.client import Flow

REFUSE_NETWORK = """
import os, socket

_log = os.environ["TUTORIAL_NETWORK_LOG"]
_connect, _connect_ex, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
)
_LOCAL = {"127.0.0.1", "::1", "localhost"}


def _refused(where):
    with open(_log, "a") as f:
        f.write(f"{where}\\n")
    return ConnectionRefusedError(f"the test refuses outbound connections ({where})")


def connect(self, address):
    if self.family != socket.AF_UNIX and address[0] not in _LOCAL:
        raise _refused(address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family != socket.AF_UNIX and address[0] not in _LOCAL:
        raise _refused(address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL and host is not None:
        raise _refused(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = (
    connect, connect_ex, getaddrinfo
)
"""


def tutorials_dir() -> Path:
    spec = importlib.util.find_spec("metaflow")  # finds the package without importing it
    assert spec is not None and spec.submodule_search_locations, "pip install metaflow (dev)"
    return Path(next(iter(spec.submodule_search_locations))) / "tutorials"


def port(name: str, dest: Path) -> Path:
    """Copy tutorial ``name`` to ``dest``, changing only the lines that import metaflow."""
    source = tutorials_dir() / name
    target = dest / name
    shutil.copytree(source, target)
    for path in target.glob("*.py"):
        before = path.read_text().splitlines(keepends=True)
        after = [line.replace("from metaflow import", "from shipyard import") for line in before]
        changed = [a for a, b in zip(before, after, strict=True) if a != b]
        assert changed and all(line.lstrip().startswith("from metaflow import") for line in changed)
        path.write_text("".join(after))
    return target


Tutorial = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def tutorial(tmp_path: Path) -> Tutorial:
    net = tmp_path / "refuse-network"
    net.mkdir()
    (net / "sitecustomize.py").write_text(REFUSE_NETWORK)
    log = tmp_path / "network-attempts.log"
    log.touch()
    path = os.pathsep.join([str(net), os.environ.get("PYTHONPATH", "")])

    def run(name: str, file: str, *args: str) -> subprocess.CompletedProcess[str]:
        folder = (
            port(name, tmp_path / "ported")
            if not (tmp_path / "ported" / name).exists()
            else (tmp_path / "ported" / name)
        )
        done = subprocess.run(
            [sys.executable, file, "run", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": path, "TUTORIAL_NETWORK_LOG": str(log)},
            timeout=300,
        )
        assert log.read_text() == "", f"{name} tried to reach the network: {log.read_text()}"
        return done

    (tmp_path / "ported").mkdir()
    env = {**os.environ, "PYTHONPATH": path, "TUTORIAL_NETWORK_LOG": str(log)}
    probe = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=5)"
    refused = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "refuses outbound connections" in refused.stderr
    assert "192.0.2.1" in log.read_text()
    log.write_text("")
    return run


def movies(tutorial: str = "01-playlist") -> list[dict[str, str]]:
    """The tutorial's own copy of the movie data (02's has one more row than 01's)."""
    with (tutorials_dir() / tutorial / "movies.csv").open() as f:
        return list(csv.DictReader(f))


def test_00_helloworld(tutorial: Tutorial) -> None:
    out = tutorial("00-helloworld", "helloworld.py")
    assert out.returncode == 0, out.stderr
    for line in ("HelloFlow is starting.", "Metaflow says: Hi!", "HelloFlow is all done."):
        assert line in out.stdout
    run = Flow("HelloFlow").latest_run
    assert run is not None and run.successful
    assert [s.name for s in run.steps()] == ["start", "hello", "end"]


def test_01_playlist(tutorial: Tutorial) -> None:
    out = tutorial("01-playlist", "playlist.py")
    assert out.returncode == 0, out.stderr
    rows = movies()
    scifi = sorted(r["movie_title"] for r in rows if "sci-fi" in r["genres"].lower())
    data = Flow("PlayListFlow").latest_run.data  # type: ignore[union-attr]
    assert data is not None and sorted(data.playlist) == scifi and len(scifi) > 5
    title, genres = data.bonus
    assert "sci-fi" not in genres.lower() and {"movie_title": title, "genres": genres} in [
        {"movie_title": r["movie_title"], "genres": r["genres"]} for r in rows
    ]
    assert "Playlist for movies in genre 'Sci-Fi'" in out.stdout
    assert f"Pick 5: '{data.playlist[4]}'" in out.stdout and "Pick 6:" not in out.stdout
    assert f"Bonus Pick: '{title}' from '{genres}'" in out.stdout

    again = tutorial("01-playlist", "playlist.py", "--genre", "Comedy", "--recommendations", "3")
    assert again.returncode == 0, again.stderr
    comedy = Flow("PlayListFlow").latest_run.data  # type: ignore[union-attr]
    assert comedy is not None
    assert sorted(comedy.playlist) == sorted(
        r["movie_title"] for r in rows if "comedy" in r["genres"].lower()
    )
    assert "Pick 3:" in again.stdout and "Pick 4:" not in again.stdout


def expected_stats() -> dict[str, list[int]]:
    """Each genre's quartiles of gross box office, as the statistics tutorial defines them
    (a genre matches a movie when its name is in the movie's genres text)."""
    rows = movies("02-statistics")
    genres = {g for r in rows for g in r["genres"].split("|")}
    stats = {}
    for genre in genres:
        gross = sorted(int(r["gross"]) for r in rows if genre in r["genres"])
        n = len(gross)
        stats[genre.lower()] = [gross[0 if n < 2 else round(n * cut)] for cut in (0.25, 0.5, 0.75)]
    return stats


def test_02_statistics_then_03_playlist_redux(tutorial: Tutorial, home: Path) -> None:
    out = tutorial("02-statistics", "stats.py")
    assert out.returncode == 0, out.stderr
    stats_run = Flow("MovieStatsFlow").latest_successful_run
    assert stats_run is not None and stats_run.data is not None
    genre_stats = stats_run.data.genre_stats
    expected = expected_stats()
    assert {g: s["quartiles"] for g, s in genre_stats.items()} == expected
    assert len(stats_run["compute_statistics"].tasks()) == len(expected)  # one per genre

    redux = tutorial("03-playlist-redux", "playlist.py")
    assert redux.returncode == 0, redux.stderr
    assert f"Using metadata provider: local@{home}" in redux.stdout
    assert f"Using analysis from 'Run('MovieStatsFlow/{stats_run.id}')'" in redux.stdout
    data = Flow("PlayListFlow").latest_run.data  # type: ignore[union-attr]
    assert data is not None
    top = expected["sci-fi"][-1]
    assert sorted(data.playlist) == sorted(
        r["movie_title"]
        for r in movies("02-statistics")
        if "Sci-Fi" in r["genres"] and int(r["gross"]) >= top
    )
    assert "sci-fi" not in data.bonus[1].lower()
    assert "Playlist for movies in genre 'Sci-Fi'" in redux.stdout


def test_04_conda_is_refused_naming_pypi(tutorial: Tutorial) -> None:
    out = tutorial("04-playlist-plus", "playlist.py")
    assert out.returncode != 0
    assert "@pypi" in out.stderr + out.stdout
    assert "PlayListFlow/" not in out.stdout  # refused before anything ran


def test_metaflow_names_shipyard_lacks_say_what_to_use_instead() -> None:
    for name, instead in [("kubernetes", "@resources"), ("batch", "@resources")]:
        with pytest.raises(ImportError, match=instead):
            exec(f"from shipyard import {name}", {})
