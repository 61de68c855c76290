"""In-process timings of the registered screenplay-ner pipeline (run by bench/entities.py,
pinned to the servers' CPU).

What ``nlp`` is here: ``spacy.load(model)`` of the registered pipeline, whose components
are ``tok2vec`` and ``ner`` (disabled) and ``screenplay`` (examples/screenplay_entities/
pipeline.py, which runs them on the prose paragraphs): ``nlp(text)`` does the whole
extraction the service answers with (the tokenizer, the Fountain parse, the model on the
prose, the structural rules, the merge; ``doc._.screenplay`` is the answer), and the
service's ``Extractor.extract(text)`` is ``nlp(text)._.screenplay`` and nothing more. So
the servers are compared with the same work in-process, and what they add is the serving.
Measured:

- ``pipe``: ``nlp.pipe(texts, batch_size)`` over the batch body's texts, pass after pass
  (words/s); ``nlp_scene``: ``nlp(scene)`` on the 500-word scene (p50 of ``calls`` calls);
- ``model_pipe``, ``model_scene``: ``tok2vec`` + ``ner`` alone on the whole text (the
  ``screenplay`` component off, the two enabled), the model's share;
- ``cpu_ms``: CPU time (``time.process_time``, best of 5 x 50 calls; the machine's load does
  not count) of ``nlp(scene)``, of ``tok2vec`` + ``ner`` alone on the whole scene, of the
  tokenizer, and of the parse and the rules.

    python bench/entities/inprocess.py SPEC.json     # prints one BENCH_JSON line
    python bench/entities/inprocess.py SPEC.json --bursts   # paired with the servers

``--bursts``: the pipeline loaded and warmed once, prints ``READY``, then for each line
``N`` read on stdin runs ``nlp(scene)`` N times and prints one BURST_JSON line: the p50 of
their wall times and their mean CPU time (``time.thread_time``), so the driver can
alternate short bursts in-process with bursts through a server (paired p50s: the
machine's drift cancels within a pair).

SPEC: {"model": DIR, "texts": [...], "scene": str, "batch_size": 32, "seconds": 10,
"calls": 200}.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples" / "screenplay_entities"))


def words_per_second(run, texts: list[str], seconds: float) -> dict[str, float]:
    """Passes over ``texts`` for about ``seconds`` (at least two); words/s of each pass."""
    words = sum(len(t.split()) for t in texts)
    rates = []
    began = time.perf_counter()
    while len(rates) < 2 or time.perf_counter() - began < seconds:
        t0 = time.perf_counter()
        run(texts)
        rates.append(words / (time.perf_counter() - t0))
    return {"median": statistics.median(rates), "best": max(rates), "passes": len(rates)}


def p50_ms(call, text: str, calls: int) -> dict[str, float]:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call(text)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50": times[len(times) // 2], "p90": times[int(len(times) * 0.9)], "calls": calls}


def cpu_ms(call, n: int = 50) -> float:
    """CPU ms of one call: best of 5 rounds of ``n``."""
    times = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            call()
        times.append((time.process_time() - t0) / n * 1000)
    return min(times)


def bursts(nlp, scene: str) -> None:
    """Answer each line ``N`` on stdin with the p50 wall ms and mean CPU ms of N calls."""
    print("READY", flush=True)
    for line in sys.stdin:
        n = int(line)
        walls, cpus = [], []
        for _ in range(n):
            c0, t0 = time.thread_time(), time.perf_counter()
            nlp(scene)
            walls.append((time.perf_counter() - t0) * 1000)
            cpus.append((time.thread_time() - c0) * 1000)
        out = {"p50": statistics.median(walls), "cpu_ms": statistics.mean(cpus), "calls": n}
        print("BURST_JSON " + json.dumps(out), flush=True)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    import spacy
    from fountain import parse
    from pipeline import COMPONENT
    from rules import structural

    nlp = spacy.load(spec["model"])  # importing pipeline registered its component
    if COMPONENT not in nlp.pipe_names:
        raise SystemExit(f"{spec['model']} has no {COMPONENT!r} component: {nlp.pipe_names}")
    texts, scene, size = spec["texts"], spec["scene"], int(spec["batch_size"])
    for warm in texts[:8]:
        nlp(warm)
    if "--bursts" in sys.argv[2:]:
        for _ in range(20):
            nlp(scene)
        bursts(nlp, scene)
        return
    whole = {
        "pipe": words_per_second(
            lambda ts: list(nlp.pipe(ts, batch_size=size)), texts, spec["seconds"]
        ),
        "nlp_scene": p50_ms(nlp, scene, spec["calls"]),
    }
    # tok2vec + ner alone: enabled as components of their own, the screenplay one off
    # (select_pipes only disables; these two are disabled in the registered pipeline)
    for name in ("tok2vec", "ner"):
        if name in nlp.component_names:
            nlp.enable_pipe(name)
    with nlp.select_pipes(disable=[COMPONENT]):
        model = {
            "model_pipe": words_per_second(
                lambda ts: list(nlp.pipe(ts, batch_size=size)), texts, spec["seconds"]
            ),
            "model_scene": p50_ms(nlp, scene, spec["calls"]),
            "model_cpu": cpu_ms(lambda: nlp(scene)),
            "model_pipes": list(nlp.pipe_names),
        }
    for name in ("tok2vec", "ner"):
        if name in nlp.component_names:
            nlp.disable_pipe(name)
    script = parse(scene)
    out = {
        **whole,
        **{k: v for k, v in model.items() if k != "model_cpu"},
        "pipes": list(nlp.pipe_names),
        "cpu_ms": {
            "nlp": cpu_ms(lambda: nlp(scene)),
            "model": model["model_cpu"],
            "tokenizer": cpu_ms(lambda: nlp.make_doc(scene)),
            "parse": cpu_ms(lambda: parse(scene)),
            "rules": cpu_ms(lambda: structural(script, scene)),
        },
        "pipe_names": nlp.pipe_names,
        "spacy": spacy.__version__,
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
    }
    print("BENCH_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
