"""Train the screenplay NER model: spaCy's ``tok2vec`` + ``ner`` from ``spacy.blank("en")``
and ``config.cfg`` beside this file, on generated scenes (generate.py), never on the gold set;
then the ``screenplay`` component (pipeline.py: the parse, the model on the prose, the rules,
the merge) is added to the saved pipeline, so the registered model is the whole extractor.

    train(generate(600, seed=7), generate(60, seed=8), "out/")   # -> out/model-best
    python examples/screenplay_entities/train.py --n 150 --steps 200 --out /tmp/ner

Nothing pretrained goes in: no vectors, no ``init_tok2vec``, no downloaded pipeline. The dev
set that picks the best checkpoint is generated too (another seed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "config.cfg"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here reaches a hub; say so anyway


def to_docs(nlp: Any, examples: Sequence[Any]) -> tuple[list[Any], int]:
    """spaCy ``Doc``s with the examples' entities, one per paragraph of prose as the pipeline
    reads it (``pipeline.segments``: action, dialogue, parentheticals — not headings or
    cues, which the rules read); returns them and how many spans did not fall on token
    boundaries (skipped)."""
    from fountain import parse
    from pipeline import segments

    docs = []
    skipped = 0
    for ex in examples:
        for a, b in segments(parse(ex.text), ex.text):
            doc = nlp.make_doc(ex.text[a:b])
            ents = []
            for start, end, label in ex.spans:
                if a <= start and end <= b:
                    span = doc.char_span(start - a, end - a, label=label, alignment_mode="strict")
                    if span is None:
                        skipped += 1
                    else:
                        ents.append(span)
            doc.ents = ents
            docs.append(doc)
    return docs, skipped


def train(
    examples: Sequence[Any],
    dev: Sequence[Any],
    out: str | os.PathLike[str],
    *,
    max_steps: int = 600,
    eval_frequency: int = 100,
    seed: int = 7,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train on ``examples``, keep the best on ``dev``; the pipeline is saved to
    ``out/model-best``. Returns ``{"path", "seconds", "skipped", "words"}``."""
    import spacy
    from spacy.cli.train import train as spacy_train
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="screenplay-ner-data-") as tmp:
        skipped = 0
        words = 0
        for name, exs in (("train", examples), ("dev", dev)):
            docs, bad = to_docs(nlp, exs)
            skipped += bad
            if name == "train":
                words = sum(len(d) for d in docs)
            DocBin(docs=docs).to_disk(Path(tmp) / f"{name}.spacy")
        overrides = {
            "paths.train": str(Path(tmp) / "train.spacy"),
            "paths.dev": str(Path(tmp) / "dev.spacy"),
            "training.max_steps": max_steps,
            "training.eval_frequency": eval_frequency,
            "system.seed": seed,
        }
        began = time.perf_counter()
        if quiet:
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):
                spacy_train(CONFIG, out, overrides=overrides)
        else:
            spacy_train(CONFIG, out, overrides=overrides)
        seconds = time.perf_counter() - began
    add_screenplay(out / "model-best")
    return {"path": out / "model-best", "seconds": seconds, "skipped": skipped, "words": words}


def add_screenplay(folder: Path) -> None:
    """Make the saved pipeline the whole extractor: ``screenplay`` (pipeline.py) after
    ``ner``, so ``spacy.load(folder)(text)._.screenplay`` is the service's answer."""
    import spacy
    from pipeline import add_component

    nlp = spacy.load(folder)
    add_component(nlp)
    nlp.to_disk(folder)


def main() -> None:
    import generate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=600, help="generated training inputs")
    parser.add_argument("--dev", type=int, default=60, help="generated dev inputs")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    began = time.perf_counter()
    examples = generate.generate(args.n, seed=args.seed)
    dev = generate.generate(args.dev, seed=args.seed + 1000)
    print(f"generated {len(examples)} + {len(dev)} in {time.perf_counter() - began:.1f}s")
    result = train(examples, dev, args.out, max_steps=args.steps, seed=args.seed)
    print(f"trained in {result['seconds']:.1f}s on {result['words']} tokens -> {result['path']}")


if __name__ == "__main__":
    main()
