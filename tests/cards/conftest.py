"""Fixtures for the card tests: a private SHIPYARD_HOME, and one real run (made once per
module with ``run_flow``) whose steps carry a default card, blank cards with every component,
and a component that fails to render."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipyard.client import Run
from shipyard.store import context as _stores
from shipyard.testing import run_flow, write_flow


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (grey pixels), built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


CARD_FLOW = """
from shipyard import FlowSpec, Parameter, current, step
from shipyard.cards import (
    Artifact, BarChart, Component, Image, LineChart, Markdown, Table, card,
)
import pandas as pd

PNG = {png!r}


class Broken(Component):
    def render(self):
        raise RuntimeError("this component is broken on purpose")


class CardFlow(FlowSpec):
    \"\"\"Every kind of card.\"\"\"

    alpha = Parameter("alpha", default=0.5, help="a weight")

    @card
    @step
    def start(self):
        self.numbers = list(range(5))
        self.label = "<b>bold?</b>"
        self.next(self.report)

    @card(type="blank")
    @card(id="charts", type="blank", title="Charts")
    @step
    def report(self):
        current.card.append(Markdown("# Report <script>alert(1)</script>\\n\\nSee [docs](https://example.com/docs)."))
        current.card.extend([
            Table([[1, 0.25], [2, 0.5]], headers=["fold", "auc"]),
            Table([{{"a": 1, "b": "<i>x</i>"}}, {{"a": 2, "c": 3}}]),
            Table(pd.DataFrame({{"x": range(150), "y": range(150)}}), max_rows=10),
            Image(PNG, label="pixels"),
            Artifact(self.numbers, name="numbers"),
            Broken(),
            Table(42),
        ])
        current.card["charts"].append(LineChart(x=[1, 2, 3], y={{"loss": [3.0, 2.0, 1.5]}}))
        current.card["charts"].append(BarChart({{"a": 3, "<b>": 5}}, title="counts"))
        self.next(self.end)

    @card(type="default", id="summary")
    @step
    def end(self):
        current.card.append(Markdown("**done**"))
"""


@pytest.fixture
def png() -> bytes:
    return png_bytes()


@dataclass
class CardEnv:
    home: Path
    run: Run


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test runs with its own SHIPYARD_HOME (module fixtures set theirs themselves)."""
    home = tmp_path / "home"
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.delenv("SHIPYARD_DB_URL", raising=False)
    monkeypatch.delenv("SHIPYARD_STORE_URL", raising=False)
    _stores.reset()
    yield home
    _stores.reset()


@pytest.fixture(scope="module")
def card_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardEnv]:
    """One run of CardFlow in a private SHIPYARD_HOME, shared by a test module."""
    home = tmp_path_factory.mktemp("cards") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHIPYARD_HOME", str(home))
        for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
            patch.delenv(name, raising=False)
        _stores.reset()
        flow = write_flow(CARD_FLOW.format(png=png_bytes()), home.parent, "card_flow")
        run = run_flow(flow)
        try:
            yield CardEnv(home, run)
        finally:
            _stores.reset()


@pytest.fixture
def env(card_env: CardEnv, monkeypatch: pytest.MonkeyPatch) -> CardEnv:
    """``card_env`` with its SHIPYARD_HOME set for this test."""
    monkeypatch.setenv("SHIPYARD_HOME", str(card_env.home))
    _stores.reset()
    return card_env
