"""Train, evaluate and register the screenplay entity model, ``screenplay-ner``.

    python examples/screenplay_entities/flow.py run                          # the full size
    python examples/screenplay_entities/flow.py run --examples 150 --steps 150   # CI size

    start (generated scenes: train + dev) ─► train (spaCy tok2vec + ner from a blank English
    pipeline, config.cfg) ─► evaluate (the gold set: the model and the rules-and-gazetteer
    baseline, strict and partial F1 per label) ─► end (card, register ``screenplay-ner``)

The model is one ``Files`` artifact: the spaCy pipeline directory (``Extractor.load(path)``
reads it; it is the whole extractor: ``tok2vec`` → ``ner`` → ``screenplay``). It is
registered with its scores as metrics — on the gold set ``<label>_f1`` (strict),
``<label>_f1_partial``, the baseline's as ``baseline_<label>_f1``; on the held-out gold set
(gold/heldout/) the same with ``heldout_`` (``heldout_TIME_f1``, ``baseline_heldout_TIME_f1``)
— and the card shows both sets side by side with the model's confusions and misses. Neither
gold set enters training.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from shipyard import FlowSpec, Parameter, current, step
from shipyard.cards import card

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded; say so to any library

MODEL = "screenplay-ner"


class ScreenplayNERFlow(FlowSpec):
    """Generate scenes from templates and gazetteers, train a spaCy NER model on them, score
    it and the baseline on the hand-written gold set, register it."""

    examples = Parameter("examples", default=1500, help="generated training inputs")
    steps = Parameter("steps", default=1500, help="training steps (batches)")
    dev = Parameter("dev", default=80, help="generated inputs that pick the best checkpoint")
    seed = Parameter("seed", default=7, help="the generator's and the trainer's seed")

    @step
    def start(self):
        """The training and dev scenes (the dev set comes from another seed)."""
        import generate

        began = time.perf_counter()
        self.train_set = generate.generate(int(self.examples), seed=int(self.seed))
        self.dev_set = generate.generate(int(self.dev), seed=int(self.seed) + 1000)
        self.generate_seconds = round(time.perf_counter() - began, 2)
        print(
            f"generated {len(self.train_set)} training and {len(self.dev_set)} dev inputs "
            f"in {self.generate_seconds}s"
        )
        self.next(self.train)

    @step
    def train(self):
        """spaCy's tok2vec + ner from spacy.blank("en"), from config.cfg."""
        import train

        from shipyard import Files

        out = Path(tempfile.mkdtemp(prefix="screenplay-ner-"))
        result = train.train(
            self.train_set,
            self.dev_set,
            out,
            max_steps=int(self.steps),
            eval_frequency=max(50, int(self.steps) // 5),
            seed=int(self.seed),
            quiet=True,
        )
        self.train_seconds = round(result["seconds"], 2)
        self.train_tokens = result["words"]
        self.skipped_spans = result["skipped"]
        print(f"trained in {self.train_seconds}s on {self.train_tokens} tokens")
        self.model = Files(result["path"])
        self.build_dir = str(out)
        self.next(self.evaluate)

    @step
    def evaluate(self):
        """The model and the baseline on the gold set, and on the held-out gold set."""
        import evaluate
        import gold
        from pipeline import Extractor

        shutil.rmtree(self.build_dir, ignore_errors=True)  # stored by now
        began = time.perf_counter()
        extractors = {"model": Extractor.load(self.model.path), "baseline": Extractor(None)}
        scenes, heldout = gold.load(gold.GOLD_DIR), gold.load(gold.HELDOUT_DIR)
        self.gold_scenes, self.heldout_scenes = len(scenes), len(heldout)
        self.result = evaluate.compare(extractors, scenes)
        self.heldout_result = evaluate.compare(extractors, heldout)
        self.evaluate_seconds = round(time.perf_counter() - began, 2)
        for title, result in (("gold", self.result), ("held-out gold", self.heldout_result)):
            print(f"{title}: " + " | ".join(evaluate.headers(result)))
            for row in evaluate.table(result):
                print("  ".join(str(c) for c in row))
        self.next(self.end)

    @card(type="blank")
    @step
    def end(self):
        """The card, and the model registered with its gold-set scores."""
        import evaluate
        from rules import LABELS

        note = (
            f"{self.gold_scenes} hand-written gold inputs; trained on {len(self.train_set)} "
            f"generated inputs ({self.train_tokens} tokens, {self.steps} steps, seed "
            f"{self.seed}) in {self.train_seconds}s."
        )
        for component in evaluate.card(self.result, note):
            current.card.append(component)
        heldout_note = (
            f"{self.heldout_scenes} hand-written held-out inputs (gold/heldout/): written "
            "before the last changes to the generator and the rules and never tuned against."
        )
        for component in evaluate.card(self.heldout_result, heldout_note, title="held-out"):
            current.card.append(component)
        metrics: dict[str, float] = {}
        for result, where in ((self.result, ""), (self.heldout_result, "heldout_")):
            for name, who in (("model", ""), ("baseline", "baseline_")):
                prefix = who + where
                labels = result[name]["labels"]
                for label in LABELS:
                    metrics[f"{prefix}{label}_f1"] = labels[label]["strict"]["f1"]
                    metrics[f"{prefix}{label}_f1_partial"] = labels[label]["partial"]["f1"]
                metrics[f"{prefix}overall_f1"] = result[name]["overall"]["strict"]["f1"]
        metrics["train_seconds"] = self.train_seconds
        print(f"gold-set scores: {metrics}")
        tags = [f"examples={self.examples}", f"steps={self.steps}", f"seed={self.seed}"]
        current.register_model(MODEL, self.model, metrics=metrics, tags=tags)
        print(f"registered {MODEL}; look at it: shipyard models show {MODEL}")


if __name__ == "__main__":
    ScreenplayNERFlow()
