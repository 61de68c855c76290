"""In-process timings of the screenplay NER pipeline (run by bench/entities.py, pinned to the
servers' CPU): bare spaCy — ``nlp.pipe`` over the batch texts, ``nlp(text)`` on the 500-word
scene — and the example's ``Extractor`` over the same (parse, rules, model, merge).

    python bench/entities/inprocess.py SPEC.json     # prints one BENCH_JSON line

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


def overhead_cpu_ms(nlp, scene: str, n: int = 50) -> dict[str, float]:
    """CPU ms (``time.process_time``, best of 5 x ``n``) of what the service adds to spaCy on
    the scene: the parse, the rules, the merge with the model's entities, and the JSON."""
    from fountain import parse
    from pipeline import merge
    from rules import structural

    doc = nlp(scene)
    found = [(e.label_, e.start_char, e.end_char) for e in doc.ents]
    script = parse(scene)
    rules = structural(script, scene)

    def best(call) -> float:
        times = []
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(n):
                call()
            times.append((time.process_time() - t0) / n * 1000)
        return min(times)

    return {
        "parse": best(lambda: parse(scene)),
        "rules": best(lambda: structural(script, scene)),
        "merge": best(lambda: merge(script, scene, rules, found)),
        "model": best(lambda: nlp(scene)) if n else 0.0,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    import spacy
    from pipeline import Extractor

    nlp = spacy.load(spec["model"])
    extractor = Extractor(nlp)
    texts, scene, size = spec["texts"], spec["scene"], int(spec["batch_size"])
    for warm in texts[:8]:
        nlp(warm)
        extractor.extract(warm)
    out = {
        "pipe": words_per_second(
            lambda ts: list(nlp.pipe(ts, batch_size=size)), texts, spec["seconds"]
        ),
        "extract_many": words_per_second(
            lambda ts: extractor.extract_many(ts, batch_size=size), texts, spec["seconds"]
        ),
        "nlp_scene": p50_ms(nlp, scene, spec["calls"]),
        "extract_scene": p50_ms(extractor.extract, scene, spec["calls"]),
        "overhead_cpu_ms": overhead_cpu_ms(nlp, scene),
        "spacy": spacy.__version__,
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
    }
    print("BENCH_JSON " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
