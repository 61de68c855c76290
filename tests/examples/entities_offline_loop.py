"""examples/screenplay_entities end to end on a small training run (run inside a loopback-only
network namespace by tests/examples/test_entities_flow.py, so a hidden download fails): the
flow generates scenes, trains the spaCy model from a blank pipeline, scores it and the
rules-and-gazetteer baseline on the gold set and registers ``screenplay-ner`` with those
scores; the registered pipeline loads from its local files and beats the baseline on every
label."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "screenplay_entities"
sys.path.insert(0, str(EXAMPLE))

from rules import LABELS  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("SHIPYARD_ENTITIES_NETNS") != "1",
    reason="run by tests/examples/test_entities_flow.py inside a network namespace",
)

#: the CI size (about 30 s of CPU to train): the smallest that beat the baseline on every
#: label the rules leave something to (300 steps did not on LOCATION: 0.827 vs 0.848)
EXAMPLES, STEPS = 600, 600

SCENE = """\
INT. HARBOUR OFFICE - NIGHT

MAREK (50s) counts cash. Outside, the lights of Gdynia.

MAREK
Where is Ilse? She was due at ten.

ILSE (O.S.)
Behind you.
"""


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=420, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.timeout(450)
def test_the_flow_trains_scores_and_registers_the_model(tmp_path: Path, monkeypatch) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_HOME"] = str(tmp_path / "home")
    out = _run(
        env, sys.executable, str(EXAMPLE / "flow.py"), "run",
        "--examples", str(EXAMPLES), "--steps", str(STEPS),
    )  # fmt: skip
    assert f"generated {EXAMPLES} training" in out and "registered screenplay-ner" in out, out
    shown = _run(env, sys.executable, "-m", "shipyard", "models", "show", "screenplay-ner")
    assert f"examples={EXAMPLES}" in shown and "CHARACTER_f1" in shown, shown

    monkeypatch.setenv("SHIPYARD_HOME", env["SHIPYARD_HOME"])
    from pipeline import Extractor

    from shipyard.registry import Model, Registry

    model = Model("screenplay-ner", registry=Registry())
    metrics = model.info.metrics
    for label in LABELS:
        model_f1, baseline_f1 = metrics[f"{label}_f1"], metrics[f"baseline_{label}_f1"]
        # above the baseline, unless the rules (which both share) already get every one
        assert model_f1 > baseline_f1 or model_f1 == baseline_f1 == 1.0, (label, metrics)
        assert f"heldout_{label}_f1" in metrics and f"baseline_heldout_{label}_f1" in metrics
    assert metrics["CHARACTER_f1"] >= 0.9, metrics
    # the held-out set's times in action lines are in forms the rules do not read: there the
    # model must find times the baseline cannot
    assert metrics["heldout_TIME_f1"] > metrics["baseline_heldout_TIME_f1"], metrics

    # the registered files are a spaCy pipeline that loads from its local folder
    extractor = Extractor.load(model.load())
    # the registered pipeline is the whole extractor: nlp(text) gives the service's answer
    assert extractor.nlp.component_names == ["tok2vec", "ner", "screenplay"]
    assert extractor.nlp.pipe_names == ["screenplay"]  # it runs tok2vec and ner on the prose
    answer = extractor.extract(SCENE)
    assert extractor.nlp(SCENE)._.screenplay == answer
    for e in answer["entities"]:
        assert SCENE[e["start"] : e["end"]] == e["text"] and e["label"] in LABELS, e
    got = {(e["label"], e["text"]) for e in answer["entities"]}
    assert {("CHARACTER", "MAREK"), ("CHARACTER", "ILSE"), ("CHARACTER", "Ilse")} <= got, got
    assert ("LOCATION", "HARBOUR OFFICE") in got and ("TIME", "NIGHT") in got, got
    assert [s["characters"] for s in answer["scenes"]] == [["MAREK", "ILSE"]]
    assert all(e["scene"] == 0 for e in answer["entities"])
